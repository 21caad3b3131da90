"""Credentials in URLs are masked as pip masks them (``user:****``)."""

from __future__ import annotations

from resolver.redact import redact


def test_password_is_masked_user_kept() -> None:
    assert redact("--index-url https://alice:s3cr3t@mirror.example/simple") == \
        "--index-url https://alice:****@mirror.example/simple"


def test_lone_token_is_masked() -> None:
    assert redact("https://ghp_abc123@host/x and http://u:p@h:8080/y") == "https://****@host/x and http://u:****@h:8080/y"


def test_text_without_credentials_is_unchanged() -> None:
    text = "torch==2.1.0+cu121 from https://download.pytorch.org/whl/cu121; mail me@example.com"
    assert redact(text) == text


def test_scheme_after_a_long_word_is_still_masked() -> None:
    # the scheme is matched from at most its last 32 characters (linear time on a 1 MB argument); the mask holds
    assert redact("x" * 40 + "https://tok@h/y " + "y" * 100000) == "x" * 40 + "https://****@h/y " + "y" * 100000
