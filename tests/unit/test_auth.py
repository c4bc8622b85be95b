from pydantic import SecretStr

from agents.auth import allowed, bearer_token


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_allowed_only_with_the_right_token() -> None:
    secret = SecretStr("s3cret")
    assert allowed(None, None)
    assert allowed(secret, "Bearer s3cret")
    assert not allowed(secret, "Bearer s3cre")
    assert not allowed(secret, "Bearer s3cret2")
    assert not allowed(secret, None)
    assert not allowed(secret, "s3cret")
