"""Responses API core: parsing, synthesis, the body and the stream, and the official SDK reading them."""

import itertools
from collections.abc import Iterator
from typing import Any

import httpx2
import jsonschema
import openai
import orjson
import pydantic
import pytest

from sim import responses, schema_values, tools
from sim.content import TextGenerator, build_vocabulary
from sim.errors import ApiError
from sim.openai_wire import error_body
from sim.replies import ContentPolicy, ReplyWriter
from sim.tokens import count_chat_prompt, count_text, count_tools, encoding_for_model
from tests.openapi import assert_valid

WRITER = ReplyWriter(TextGenerator(build_vocabulary(), seed=3))
CREATED_S = 1_750_766_212
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a given location.",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    "strict": False,
}
SEARCH = {"type": "file_search", "vector_store_ids": ["vs_1"]}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def events_of(response: responses.ModelResponse) -> list[dict[str, Any]]:
    """Decode a stream, checking the framing and validating every event."""
    decoded = []
    for event in responses.stream_events(response):
        assert event.endswith(b"\n\n") and b"\r" not in event and event.count(b"\n") == 3
        head, data = event[:-2].split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data[6:])
        assert payload["type"] == head[7:].decode()
        assert_valid("ResponseStreamEvent", payload)
        decoded.append(payload)
    return decoded


def answer(**fields: Any) -> tuple[responses.ModelResponse, dict[str, Any]]:
    body = {"model": "gpt-4o", "input": "What is the weather in Paris?", **fields}
    response = responses.synthesize(responses.parse_responses_request(body), WRITER, created_s=CREATED_S)
    decoded = orjson.loads(responses.response_body(response))
    assert_valid("Response", decoded)
    events = events_of(response)
    assert events[-1]["response"] == decoded  # the stream's last event carries the same object
    return response, decoded


def refusal(body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        responses.parse_responses_request(body)
    assert caught.value.status == 400
    return caught.value


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        ({"model": None}, "Missing required parameter: 'model'.", "model", "missing_required_parameter"),
        ({"model": 4}, "Invalid type for 'model': expected a string, but got an integer instead.",
         "model", "invalid_type"),
        ({"input": 5}, "Invalid type for 'input': expected one of a string or array of objects, but got an integer "
         "instead.", "input", "invalid_type"),
        ({"input": [{"role": "bot", "content": "x"}]}, "Invalid value: 'bot'. Supported values are: 'assistant', "
         "'system', 'developer', and 'user'.", "input[0].role", "invalid_value"),
        ({"input": [{"role": "user"}]}, "Missing required parameter: 'input[0].content'.", "input[0].content",
         "missing_required_parameter"),
        ({"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "Invalid value: 'text'. "
         "Supported values are: 'input_text', 'input_image', 'output_text', 'refusal', 'input_file', "
         "'computer_screenshot', and 'summary_text'.", "input[0].content[0]", "invalid_value"),
        ({"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]}, "Invalid value: "
         "'input_text'. Supported values are: 'output_text' and 'refusal'.", "input[0].content[0]", "invalid_value"),
        ({"input": [{"type": "function_call_output", "call_id": "call_1"}]},
         "Missing required parameter: 'input[0].output'.", "input[0].output", "missing_required_parameter"),
        ({"max_output_tokens": 15}, "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
         "16, but got 15 instead.", "max_output_tokens", "integer_below_min_value"),
        ({"temperature": 2.5}, "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
         "2.5 instead.", "temperature", "decimal_above_max_value"),
        ({"top_p": "high"}, "Invalid type for 'top_p': expected a decimal, but got a string instead.", "top_p",
         "invalid_type"),
        ({"stream": "yes"}, "Invalid type for 'stream': expected a boolean, but got a string instead.", "stream",
         "invalid_type"),
        ({"tool_choice": "any"}, "Invalid value: 'any'. Supported values are: 'none', 'auto', and 'required'.",
         "tool_choice", "invalid_value"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_time"}},
         "Tool choice 'function' not found in 'tools' parameter.", "tool_choice", "invalid_value"),
        ({"tool_choice": {"type": "image_generation"}}, "Tool choice 'image_generation' not found in 'tools' "
         "parameter.", "tool_choice", "invalid_value"),
        ({"tools": [{"type": "function", "parameters": {}}]}, "Missing required parameter: 'tools[0].name'.",
         "tools[0].name", "missing_required_parameter"),
        ({"tools": [{**TIME, "strict": True}]}, "Invalid schema for function 'get_time': In context=(), "
         "'additionalProperties' is required to be supplied and to be false.", "tools[0].parameters",
         "invalid_function_parameters"),
        ({"text": {"format": {"type": "json_schema", "name": "c", "strict": True, "schema": {
            **CITY_SCHEMA, "required": ["city"]}}}}, "Invalid schema for response_format 'c': In context=(), "
         "'required' is required to be supplied and to be an array including every key in properties. Missing "
         "'population'.", "text.format.schema", "invalid_json_schema"),
        ({"text": {"format": {"type": "json_schema", "schema": CITY_SCHEMA}}},
         "Missing required parameter: 'text.format.name'.", "text.format.name", "missing_required_parameter"),
        ({"text": {"format": {"type": "xml"}}}, "Invalid value: 'xml'. Supported values are: 'text', 'json_object', "
         "and 'json_schema'.", "text.format.type", "invalid_value"),
        ({"text": {"format": {"type": "json_object"}}}, "Response input messages must contain the word 'json' in "
         "some form to use 'text.format' of type 'json_object'.", "input", "invalid_value"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "Invalid 'metadata': too many properties. Expected an "
         "object with at most 16 properties, but got an object with 17 properties instead.", "metadata",
         "object_above_max_properties"),
    ],
)  # fmt: skip
def test_invalid_requests_get_the_apis_400(body: dict[str, Any], message: str, param: str, code: str) -> None:
    error = refusal({"model": "gpt-4o", "input": "hi", **body})
    assert (error.message, error.param, error.code) == (message, param, code)


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert refusal([1, 2]).message == "Invalid request body: expected a JSON object."


def test_conversation_items_are_read_as_chat_messages() -> None:
    request = responses.parse_responses_request(
        {
            "model": "gpt-4o",
            "instructions": "Be brief.",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Weather?"},
                        {"type": "input_image", "image_url": "data:,"},
                    ],
                },
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
        }
    )
    assert request.prompt == "Weather?"
    assert request.after_tool_result
    assert [m["role"] for m in request.messages] == ["developer", "user", "assistant", "tool"]


# --- the Response object ----------------------------------------------------------------------------------


def test_plain_answer_is_a_completed_message_with_exact_usage() -> None:
    _, body = answer(instructions="Be brief.", temperature=0.2, metadata={"k": "v"}, store=False)
    assert body["id"].startswith("resp_") and len(body["id"]) == 5 + 48
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["created_at"] == CREATED_S and body["completed_at"] == CREATED_S
    assert body["incomplete_details"] is None and body["error"] is None
    (item,) = body["output"]
    assert item["type"] == "message" and item["role"] == "assistant" and item["status"] == "completed"
    assert item["id"].startswith("msg_") and item["id"][-16:] == body["id"][-16:]
    (part,) = item["content"]
    assert part == {"type": "output_text", "annotations": [], "logprobs": [], "text": part["text"]}
    assert part["text"].endswith(".")
    encoding = encoding_for_model("gpt-4o")
    expected_input = count_chat_prompt(
        encoding,
        [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert body["usage"] == {
        "input_tokens": expected_input,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": count_text(encoding, part["text"]),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": expected_input + count_text(encoding, part["text"]),
    }
    assert (body["instructions"], body["temperature"], body["metadata"], body["store"]) == (
        "Be brief.",
        0.2,
        {"k": "v"},
        False,
    )
    assert (body["top_p"], body["tool_choice"], body["tools"], body["truncation"]) == (1.0, "auto", [], "disabled")
    assert body["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert "output_text" not in body  # an SDK convenience, never sent by the API


def test_max_output_tokens_cuts_the_reply_and_makes_it_incomplete() -> None:
    _, body = answer(max_output_tokens=16)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["completed_at"] is None
    assert body["output"][0]["status"] == "incomplete"
    assert body["usage"]["output_tokens"] == 16
    assert count_text(encoding_for_model("gpt-4o"), body["output"][0]["content"][0]["text"]) == 16
    assert body["max_output_tokens"] == 16


def test_a_fixed_reply_shorter_than_the_limit_completes() -> None:
    writer = ReplyWriter(WRITER.generator, default=ContentPolicy(mode="fixed", text="Sunny and mild."))
    request = responses.parse_responses_request({"model": "gpt-4o", "input": "Weather?", "max_output_tokens": 64})
    body = orjson.loads(responses.response_body(responses.synthesize(request, writer, created_s=1)))
    assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == "Sunny and mild."


def test_tool_definitions_add_to_the_input_tokens() -> None:
    _, plain = answer()
    _, with_tools = answer(tools=[WEATHER], tool_choice="none")
    functions = [{k: WEATHER[k] for k in ("name", "description", "parameters")}]
    added = count_tools(encoding_for_model("gpt-4o"), functions)
    assert added > 0
    assert with_tools["usage"]["input_tokens"] == plain["usage"]["input_tokens"] + added


# --- tools --------------------------------------------------------------------------------------------------


def calls_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body["output"] if item["type"] == "function_call"]


def test_auto_calls_functions_with_arguments_valid_for_their_schemas() -> None:
    schemas = {"get_weather": WEATHER["parameters"], "get_time": TIME["parameters"]}
    seen = set()
    for _ in range(20):
        _, body = answer(tools=[WEATHER, TIME, SEARCH])
        calls = calls_of(body)
        assert 1 <= len(calls) <= 2 and len(calls) == len(body["output"])
        for call in calls:
            assert call["id"].startswith("fc_") and call["call_id"].startswith("call_")
            assert call["status"] == "completed"
            jsonschema.validate(orjson.loads(call["arguments"]), schemas[call["name"]])
            seen.add(call["name"])
        assert len({call["id"] for call in calls}) == len(calls)
        assert body["status"] == "completed"
    assert seen == {"get_weather", "get_time"}  # the hosted tool is never called


def test_without_parallel_calls_one_function_is_called() -> None:
    for _ in range(10):
        _, body = answer(tools=[WEATHER, TIME], parallel_tool_calls=False)
        assert len(calls_of(body)) == 1
        assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", []),
        ("required", None),
        ({"type": "function", "name": "get_time"}, ["get_time"]),
        ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
         ["get_weather"]),
        ({"type": "file_search"}, []),
    ],
)  # fmt: skip
def test_tool_choice_decides_the_calls(choice: Any, expected: list[str] | None) -> None:
    _, body = answer(tools=[WEATHER, TIME, SEARCH], tool_choice=choice, parallel_tool_calls=False)
    names = [call["name"] for call in calls_of(body)]
    if expected is None:
        assert len(names) == 1
    else:
        assert names == expected
    assert body["tool_choice"] == choice
    if not names:
        assert body["output"][0]["type"] == "message"


def test_after_a_tool_result_auto_answers_with_text_and_required_calls_again() -> None:
    conversation = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    _, body = answer(input=conversation, tools=[WEATHER])
    assert [item["type"] for item in body["output"]] == ["message"]
    _, body = answer(input=conversation, tools=[WEATHER], tool_choice="required")
    assert [item["type"] for item in body["output"]] == ["function_call"]


def test_omitted_strict_is_adopted_when_the_schema_can_be_made_strict() -> None:
    loose = {"type": "function", "name": "get_time", "parameters": TIME["parameters"]}
    open_object = {"type": "function", "name": "lookup",
                   "parameters": {"type": "object", "properties": {}, "additionalProperties": True}}  # fmt: skip
    _, body = answer(tools=[loose, open_object, {**TIME, "name": "plain"}], tool_choice="none")
    normalised, kept_open, explicit = body["tools"]
    assert normalised["strict"] is True
    assert normalised["parameters"] == {**TIME["parameters"], "additionalProperties": False, "required": ["zone"]}
    assert kept_open["strict"] is False and kept_open["parameters"] == open_object["parameters"]
    assert explicit["strict"] is False and explicit["parameters"] == TIME["parameters"]
    assert normalised["description"] is None and normalised["type"] == "function"


def test_a_schema_nothing_satisfies_is_a_400_naming_the_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(schema: Any, rand: Any) -> Any:
        if "zone" in schema.get("properties", {}):
            raise schema_values.SchemaError("properties.zone", "no value satisfies it")
        return {}

    monkeypatch.setattr(tools, "value_for", refuse)
    monkeypatch.setattr(responses, "value_for", refuse)
    request = responses.parse_responses_request(
        {"model": "gpt-4o", "input": "x", "tools": [SEARCH, TIME], "tool_choice": "required"}
    )
    with pytest.raises(ApiError) as caught:
        responses.synthesize(request, WRITER, created_s=1)
    assert caught.value.status == 400
    assert caught.value.param == "tools[1].parameters"
    assert caught.value.message == "Invalid schema for function 'get_time': properties.zone: no value satisfies it"


# --- structured output ----------------------------------------------------------------------------------------


def test_json_schema_output_is_compact_json_valid_for_the_schema() -> None:
    fmt = {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA, "strict": True}
    _, body = answer(text={"format": fmt})
    text = body["output"][0]["content"][0]["text"]
    jsonschema.validate(orjson.loads(text), CITY_SCHEMA)
    assert text == orjson.dumps(orjson.loads(text)).decode()
    assert body["text"]["format"] == fmt
    assert body["usage"]["output_tokens"] == count_text(encoding_for_model("gpt-4o"), text)


def test_json_object_output_is_an_object() -> None:
    _, body = answer(input="Answer in JSON.", text={"format": {"type": "json_object"}})
    assert isinstance(orjson.loads(body["output"][0]["content"][0]["text"]), dict)


# --- the stream -----------------------------------------------------------------------------------------------

MESSAGE_EVENTS = ["response.output_item.added", "response.content_part.added"]
MESSAGE_CLOSE = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


def test_stream_of_a_message_follows_the_apis_order() -> None:
    response, body = answer()
    events = events_of(response)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    pieces = response.output[0].pieces
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", *MESSAGE_EVENTS,
                     *["response.output_text.delta"] * len(pieces), *MESSAGE_CLOSE, "response.completed"]  # fmt: skip
    for opening in events[:2]:
        assert opening["response"]["status"] == "in_progress" and opening["response"]["output"] == []
        assert opening["response"]["id"] == body["id"]
    added = events[2]["item"]
    assert added == {**body["output"][0], "status": "in_progress", "content": []}
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(e["delta"] for e in deltas) == body["output"][0]["content"][0]["text"]
    assert all(e["item_id"] == added["id"] and e["output_index"] == 0 and e["logprobs"] == [] for e in deltas)
    assert all(e["obfuscation"] for e in deltas)
    assert events[-2]["item"] == body["output"][0]


def test_stream_of_calls_gives_each_item_its_own_index() -> None:
    response, body = answer(tools=[WEATHER, TIME], tool_choice="required", stream=True)
    events = events_of(response)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == list(range(len(body["output"])))
    for index, item in enumerate(body["output"]):
        deltas = [e["delta"] for e in events
                  if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == index]  # fmt: skip
        (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done" and e["output_index"] ==
                   index]  # fmt: skip
        assert "".join(deltas) == item["arguments"] == done["arguments"] and done["name"] == item["name"]
        assert added[index]["item"]["arguments"] == "" and added[index]["item"]["status"] == "in_progress"


def test_a_cut_stream_ends_with_response_incomplete() -> None:
    response, _ = answer(max_output_tokens=20, stream=True)
    events = events_of(response)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert "response.completed" not in [e["type"] for e in events]


def test_obfuscation_can_be_turned_off() -> None:
    response, _ = answer(stream=True, stream_options={"include_obfuscation": False})
    assert not any("obfuscation" in e for e in events_of(response))


# --- the official SDK reading our bytes ---------------------------------------------------------------------


def handler(request: httpx2.Request) -> httpx2.Response:
    """A minimal app: what the worker does with the core, without a server."""
    assert request.url.path == "/v1/responses"
    try:
        parsed = responses.parse_responses_request(orjson.loads(request.content))
        result = responses.synthesize(parsed, WRITER, created_s=CREATED_S)
    except ApiError as error:
        return httpx2.Response(error.status, content=error_body(error), headers={"content-type": "application/json"})
    if parsed.stream:
        stream = b"".join(responses.stream_events(result))
        return httpx2.Response(200, content=stream, headers={"content-type": "text/event-stream"})
    return httpx2.Response(200, content=responses.response_body(result), headers={"content-type": "application/json"})


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    with openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=http, max_retries=0) as sdk:
        yield sdk


class City(pydantic.BaseModel):
    city: str
    population: int


class GetWeather(pydantic.BaseModel):
    location: str
    unit: str


def test_sdk_create_reads_output_text_and_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="Hello", instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text == response.output[0].content[0].text
    assert response.output_text
    assert response.usage is not None and response.usage.total_tokens > response.usage.input_tokens > 0


def test_sdk_raw_stream_yields_typed_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4o", input="Hello", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text


def test_sdk_stream_helper_accumulates_text(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o", input="Hello") as stream:
        snapshots = [e.snapshot for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert snapshots and snapshots[-1] == final.output_text
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(snapshots))


def test_sdk_stream_helper_parses_function_call_arguments(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="gpt-4o",
        input="Weather?",
        tools=[WEATHER, openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
    ) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert calls
    for call in calls:
        if call.name == "GetWeather":
            assert isinstance(call.parsed_arguments, GetWeather)
        else:
            assert call.parsed_arguments == orjson.loads(call.arguments)


def test_sdk_parse_gives_output_parsed(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model="gpt-4o", input="A city?", text_format=City)
    assert isinstance(parsed.output_parsed, City)
    with client.responses.stream(model="gpt-4o", input="A city?", text_format=City) as stream:
        assert isinstance(stream.get_final_response().output_parsed, City)


def test_sdk_stream_helper_has_no_final_response_when_the_reply_is_cut(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o", input="Hello", max_output_tokens=16) as stream:
        kinds = [e.type for e in stream]
        assert kinds[-1] == "response.incomplete"
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_sdk_raises_bad_request_with_param_and_code(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="Hello", max_output_tokens=8)
    assert caught.value.param == "max_output_tokens" and caught.value.code == "integer_below_min_value"
