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
