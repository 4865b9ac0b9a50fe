"""Checks that the official Python SDKs parse mock-upstream's answers.

Not run in CI (it needs the SDKs from PyPI). Run by hand:

    cargo run --release -p mock-upstream -- --listen 127.0.0.1:9311 &
    python3 -m venv /tmp/sdkvenv
    /tmp/sdkvenv/bin/pip install openai anthropic google-genai
    /tmp/sdkvenv/bin/python crates/mock-upstream/tests/sdk_smoke.py 9311

Only the base URL differs from talking to the real providers.
"""

import sys

PORT = sys.argv[1] if len(sys.argv) > 1 else "9311"
BASE = f"http://127.0.0.1:{PORT}"
EXPECTED = "Hello from the mock upstream."
failures = []


def check(name, fn):
    try:
        fn()
        print(f"ok    {name}")
    except Exception as e:  # report every failure, not just the first
        failures.append(name)
        print(f"FAIL  {name}: {type(e).__name__}: {e}")


def openai_checks():
    import openai

    client = openai.OpenAI(base_url=f"{BASE}/v1", api_key="sk-smoke", max_retries=0)

    def chat():
        r = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == EXPECTED, r
        assert r.usage.total_tokens > 0

    def chat_stream():
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        assert text == EXPECTED, text
        assert usage is not None

    def raw_headers():
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == "9999"

    def responses():
        r = client.responses.create(model="gpt-4o-mini", input="hi")
        assert r.output_text == EXPECTED, r

    def responses_stream():
        text = ""
        final = None
        for event in client.responses.create(model="gpt-4o-mini", input="hi", stream=True):
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.completed":
                final = event.response
        assert text == EXPECTED, text
        assert final.output_text == EXPECTED

    def models():
        ids = [m.id for m in client.models.list()]
        assert "gpt-4o-mini" in ids, ids

    def azure():
        az = openai.AzureOpenAI(
            azure_endpoint=BASE, api_key="az-smoke", api_version="2024-10-21", max_retries=0
        )
        r = az.chat.completions.create(
            model="my-deployment", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == EXPECTED

    for name, fn in [
        ("openai chat", chat),
        ("openai chat stream", chat_stream),
        ("openai rate-limit headers", raw_headers),
        ("openai responses", responses),
        ("openai responses stream", responses_stream),
        ("openai models", models),
        ("azure chat", azure),
    ]:
        check(name, fn)


def anthropic_checks():
    import anthropic

    client = anthropic.Anthropic(base_url=BASE, api_key="sk-ant-smoke", max_retries=0)

    def message():
        m = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert m.content[0].text == EXPECTED, m
        assert m.stop_reason == "end_turn"
        assert m.usage.output_tokens > 0

    def stream():
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text == EXPECTED, text
        assert final.stop_reason == "end_turn"

    def models():
        ids = [m.id for m in client.models.list()]
        assert "claude-sonnet-4-5" in ids, ids

    for name, fn in [
        ("anthropic message", message),
        ("anthropic stream", stream),
        ("anthropic models", models),
    ]:
        check(name, fn)


def gemini_checks():
    from google import genai

    client = genai.Client(api_key="g-smoke", http_options={"base_url": BASE})

    def generate():
        r = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
        assert r.text == EXPECTED, r
        assert r.usage_metadata.total_token_count > 0

    def stream():
        text = "".join(
            c.text or ""
            for c in client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi")
        )
        assert text == EXPECTED, text

    def models():
        names = [m.name for m in client.models.list()]
        assert "models/gemini-2.0-flash" in names, names

    for name, fn in [
        ("gemini generate", generate),
        ("gemini stream", stream),
        ("gemini models", models),
    ]:
        check(name, fn)


def error_checks():
    """Scripted errors need the library; here only what the binary answers by itself."""
    import anthropic

    client = anthropic.Anthropic(base_url=BASE, api_key="", max_retries=0)

    def missing_key():
        try:
            client.with_options(default_headers={"x-api-key": ""}).models.list()
        except anthropic.APIStatusError as e:
            assert e.status_code == 401, e.status_code
            return
        except anthropic.AnthropicError:
            return  # the SDK refuses to send without a key
        raise AssertionError("no error")

    check("anthropic missing key", missing_key)


openai_checks()
anthropic_checks()
gemini_checks()
error_checks()

import importlib.metadata as md

print(
    "versions:",
    ", ".join(f"{p} {md.version(p)}" for p in ["openai", "anthropic", "google-genai"]),
)
sys.exit(1 if failures else 0)
