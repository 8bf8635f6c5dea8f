import ast
from pathlib import Path

import sim

FORBIDDEN = {"trio", "zmq", "hypercorn", "socket", "asyncio"}


def test_sim_imports_no_event_loop_socket_or_server() -> None:
    offenders = []
    for path in Path(sim.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    assert offenders == []
