import pytest

from sim.tokens import CL100K, O200K, count_chat_prompt, encoding_for_model, encoding_name_for_model, get_encoding


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("gpt-4.1-nano", O200K),
        ("o3-mini", O200K),
        ("o1", O200K),
        ("gpt-5", O200K),
        ("ft:gpt-4o-mini:acme::abc", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo-0125", CL100K),
    ],
)
def test_encoding_follows_openai_model_families(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_offline_encodings_match_known_token_ids() -> None:
    # Ids published with tiktoken's own tests for these encodings.
    assert get_encoding(CL100K).encode("hello world") == [15339, 1917]
    assert get_encoding(O200K).encode("hello world") == [24912, 2375]


def test_chat_prompt_counts_like_openai_cookbook() -> None:
    # OpenAI's cookbook example: 129 prompt tokens for gpt-4, 124 for gpt-4o, as the API reports.
    messages = [
        {
            "role": "system",
            "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
            "into plain English.",
        },
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Things working well together will increase revenue.",
        },
        {
            "role": "system",
            "name": "example_user",
            "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
            "for increased leverage.",
        },
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Let's talk later when we're less busy about how to do better.",
        },
        {
            "role": "user",
            "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
        },
    ]
    assert count_chat_prompt(encoding_for_model("gpt-4"), messages) == 129
    assert count_chat_prompt(encoding_for_model("gpt-4o"), messages) == 124


def test_content_parts_and_tool_calls_are_counted() -> None:
    encoding = encoding_for_model("gpt-4o")
    as_text = count_chat_prompt(encoding, [{"role": "user", "content": "hello world"}])
    as_parts = count_chat_prompt(encoding, [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}])
    assert as_parts == as_text
    call = {
        "role": "assistant",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert count_chat_prompt(encoding, [call]) > count_chat_prompt(encoding, [{"role": "assistant"}])
