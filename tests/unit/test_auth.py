from pydantic import SecretStr

from agents.auth import Access, allowed, bearer_token, check_access


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


ADMIN = SecretStr("adm")
READ = SecretStr("rd")


def test_admin_access_is_refused_with_403_while_no_admin_token_is_set() -> None:
    for admin in (None, SecretStr(""), SecretStr("   ")):
        refused = check_access(Access.ADMIN, "Bearer adm", admin, READ)
        assert refused is not None and refused[0] == 403
        assert "HEARTH_ADMIN_TOKEN" in refused[1]


def test_admin_access_needs_the_admin_token() -> None:
    assert check_access(Access.ADMIN, "Bearer adm", ADMIN, READ) is None
    assert check_access(Access.ADMIN, None, ADMIN, READ) == (
        401,
        "missing bearer token (Authorization: Bearer <token>)",
    )
    assert check_access(Access.ADMIN, "Bearer rd", ADMIN, READ) == (401, "wrong bearer token")
    assert check_access(Access.ADMIN, "Basic adm", ADMIN, READ) is not None


def test_read_access_is_open_without_a_read_token_and_guarded_with_one() -> None:
    assert check_access(Access.READ, None, ADMIN, None) is None
    assert check_access(Access.READ, None, None, SecretStr(" ")) is None
    assert check_access(Access.READ, None, ADMIN, READ) is not None
    assert check_access(Access.READ, "Bearer rd", None, READ) is None
    assert check_access(Access.READ, "Bearer adm", ADMIN, READ) is None  # admin reads too
    refused = check_access(Access.READ, "Bearer adm", None, READ)
    assert refused is not None and refused[0] == 401


def test_open_access_needs_nothing() -> None:
    assert check_access(Access.OPEN, None, ADMIN, READ) is None
