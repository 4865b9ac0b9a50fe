"""Drives the gateway with an official SDK, changing only the base URL.

Run by `tests/sdk.rs` (which starts the mock upstream and the gateway binary):

    AKR_GATEWAY=http://127.0.0.1:PORT AKR_TOKEN=... python sdk_clients.py openai|anthropic|gemini

The gateway is configured with four providers per SDK: `{sdk}` (healthy keys), `{sdk}-429`
(the first key rate limited, the second fine), `{sdk}-dry` (every key rate limited) and
`{sdk}-bad` (the first key invalid, the second fine), plus `{sdk}-early` (and, for OpenAI's
Responses API, `openai-early-r`) whose first key's first stream fails before its first content
(OpenAI: `insufficient_quota`, Anthropic: `overloaded_error` after `message_start`, Gemini: a
429 chunk). Prints one line per check and exits non-zero when any check fails.
"""

import os
import sys

GATEWAY = os.environ["AKR_GATEWAY"]
TOKEN = os.environ["AKR_TOKEN"]
EXPECTED = "Hello from the mock upstream."
failures = []


def check(name, fn):
    try:
        fn()
        print(f"ok    {name}", flush=True)
    except Exception as e:  # report every failure, not just the first
        failures.append(name)
        print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)


def assert_retry_after(headers):
    value = headers.get("retry-after")
    assert value is not None, "no retry-after header"
    assert int(value) >= 1, value


def openai_checks():
    import openai

    def client(route):
        # max_retries=0: the gateway's own retries must be invisible, and its 429 visible.
        return openai.OpenAI(base_url=f"{GATEWAY}/{route}/v1", api_key=TOKEN, max_retries=0)

    def chat(route):
        r = client(route).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == EXPECTED, r

    def stream():
        s = client("openai").chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join((c.choices[0].delta.content or "") for c in s if c.choices)
        assert text == EXPECTED, text

    def exhausted():
        try:
            chat("openai-dry")
        except openai.RateLimitError as e:
            assert e.status_code == 429
            assert_retry_after(e.response.headers)
            return
        raise AssertionError("no 429")

    def wrong_token():
        c = openai.OpenAI(base_url=f"{GATEWAY}/openai/v1", api_key="wrong", max_retries=0)
        try:
            c.models.list()
        except openai.AuthenticationError as e:
            assert e.status_code == 401
            return
        raise AssertionError("no 401")

    def early_stream():
        # The first key's stream sends the role chunk, then `insufficient_quota`: the gateway
        # holds the opening, retries on the second key, and the SDK sees one clean stream.
        s = client("openai-early").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join((c.choices[0].delta.content or "") for c in s if c.choices)
        assert text == EXPECTED, text

    def early_responses():
        # `response.created`, then an `error` event with `insufficient_quota`, on the first key.
        s = client("openai-early-r").responses.create(model="gpt-4o-mini", input="hi", stream=True)
        kinds = []
        text = ""
        for e in s:
            kinds.append(e.type)
            if e.type == "response.output_text.delta":
                text += e.delta
        assert text == EXPECTED, (text, kinds)
        assert kinds.count("response.created") == 1 and "error" not in kinds, kinds
        assert kinds[-1] == "response.completed", kinds

    check("openai chat", lambda: chat("openai"))
    check("openai stream failing before content answered by another key", early_stream)
    check("openai responses stream failing before content answered by another key", early_responses)
    check("openai stream", stream)
    check("openai models", lambda: client("openai").models.list())
    check("openai 429 answered by another key", lambda: chat("openai-429"))
    check("openai every key exhausted", exhausted)
    check("openai invalid key skipped", lambda: chat("openai-bad"))
    check("openai wrong client token", wrong_token)


def anthropic_checks():
    import anthropic

    def client(route):
        return anthropic.Anthropic(base_url=f"{GATEWAY}/{route}", api_key=TOKEN, max_retries=0)

    def message(route):
        m = client(route).messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert m.content[0].text == EXPECTED, m

    def stream():
        with client("anthropic").messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            text = "".join(s.text_stream)
        assert text == EXPECTED, text

    def exhausted():
        try:
            message("anthropic-dry")
        except anthropic.RateLimitError as e:
            assert e.status_code == 429
            assert_retry_after(e.response.headers)
            assert e.body["error"]["type"] == "rate_limit_error", e.body
            return
        raise AssertionError("no 429")

    def early_stream():
        # `message_start`, then `overloaded_error`, on the first attempt: retried after a
        # backoff, and the SDK sees one clean stream.
        with client("anthropic-early").messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            text = "".join(s.text_stream)
        assert text == EXPECTED, text

    check("anthropic message", lambda: message("anthropic"))
    check("anthropic stream overloaded before content retried", early_stream)
    check("anthropic stream", stream)
    check("anthropic 429 answered by another key", lambda: message("anthropic-429"))
    check("anthropic every key exhausted", exhausted)
    check("anthropic invalid key skipped", lambda: message("anthropic-bad"))


def gemini_checks():
    from google import genai
    from google.genai import errors

    clients = {}

    def client(route):
        # Kept alive: a google-genai client closes its connection pool when collected.
        if route not in clients:
            clients[route] = genai.Client(
                api_key=TOKEN, http_options={"base_url": f"{GATEWAY}/{route}"}
            )
        return clients[route]

    def generate(route):
        r = client(route).models.generate_content(model="gemini-2.0-flash", contents="hi")
        assert r.text == EXPECTED, r

    def stream():
        text = "".join(
            c.text or ""
            for c in client("gemini").models.generate_content_stream(
                model="gemini-2.0-flash", contents="hi"
            )
        )
        assert text == EXPECTED, text

    def exhausted():
        try:
            generate("gemini-dry")
        except errors.ClientError as e:
            assert e.code == 429, e.code
            assert e.status == "RESOURCE_EXHAUSTED", e.status
            assert_retry_after(e.response.headers)
            return
        raise AssertionError("no 429")

    def early_stream():
        text = "".join(
            c.text or ""
            for c in client("gemini-early").models.generate_content_stream(
                model="gemini-2.0-flash", contents="hi"
            )
        )
        assert text == EXPECTED, text

    check("gemini generate", lambda: generate("gemini"))
    check("gemini stream failing before content answered by another key", early_stream)
    check("gemini stream", stream)
    check("gemini 429 answered by another key", lambda: generate("gemini-429"))
    check("gemini every key exhausted", exhausted)
    check("gemini invalid key skipped", lambda: generate("gemini-bad"))


{"openai": openai_checks, "anthropic": anthropic_checks, "gemini": gemini_checks}[sys.argv[1]]()
sys.exit(1 if failures else 0)
