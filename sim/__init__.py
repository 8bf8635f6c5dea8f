"""understudy's pure core: what to answer, decided without sockets, event loops or clocks.

Nothing under ``sim`` imports trio, zmq or hypercorn; the worker and coordinator
processes are thin adapters around it.
"""
