"""The original README's quick start, in Python."""

from ai_key_rotator import KeyRotator


def test_readme_quick_start() -> None:
    rotator = KeyRotator(
        providers={
            "openai": {
                "credentials": [
                    {"key": "sk-key1", "label": "personal"},
                    {"key": "sk-key2", "label": "work"},
                ],
                "cooldown": {"type": "fixed", "durationMs": 60_000},  # 1 min cooldown
            },
            "google": {
                "credentials": [
                    {"key": "AIza-1", "meta": {"model": "gemini-flash"}},
                    {"key": "AIza-2", "meta": {"model": "gemini-pro"}},
                ],
                # default: resets at midnight UTC
            },
        }
    )
    with rotator:
        # Get an available key
        cred = rotator.get_key("openai")
        assert cred is not None
        assert cred.key == "sk-key1"
        assert cred.label == "personal"

        # On rate limit error, mark it and auto-rotate
        assert rotator.mark_exhausted("openai", "sk-key1") is True

        # Next call gets the next available key
        nxt = rotator.get_key("openai")
        assert nxt is not None and nxt.key == "sk-key2"

        google = rotator.get_key("google")
        assert google is not None and google.meta == {"model": "gemini-flash"}
        status = rotator.get_status("google")
        assert status["credentials"][0]["state"] == "available"


def test_the_packages_doc_example_runs() -> None:
    import doctest

    import ai_key_rotator

    failures, tried = doctest.testmod(ai_key_rotator)
    assert tried > 0 and failures == 0


def test_version_is_the_distributions() -> None:
    from importlib.metadata import version

    import ai_key_rotator

    assert ai_key_rotator.__version__ == version("ai-key-rotator")
