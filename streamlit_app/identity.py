"""Who a visitor is, as plain functions: signed anonymous ids, the server secret, admin checks.

Why: identity must never come from anything a visitor can type. An anonymous
visitor gets 128 random bits signed with a secret only this server knows; a value
that does not verify (typed by hand, edited, or signed by another server) is
ignored and a fresh identity issued. With sign-in, the identity is the provider's
subject. No streamlit here: `streamlit_app.widgets` reads the browser and calls in.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SECRET_FILE = "identity-secret.key"
ID_BYTES = 16  # 128 random bits per anonymous visitor
_MAC_BYTES = 16
_SIGN_CONTEXT = b"spindle-anonymous-id:v1:"
_TOKEN = re.compile(r"^(?P<id>[0-9a-f]{32})\.(?P<mac>[A-Za-z0-9_-]{22})$")
ANONYMOUS_PREFIX = "anon:"
SIGNED_IN_PREFIX = "oidc:"

Mode = Literal["signed-in", "anonymous"]


@dataclass(frozen=True)
class Identity:
    """The caller of every job action: whose jobs, files and history these are."""

    owner_id: str  # the fair-share key and the owner column in the store
    display: str  # what the sidebar shows (an e-mail, or a short form of the anonymous id)
    is_admin: bool  # may retune the shared pools and see other visitors' ids
    mode: Mode


# ---------------------------------------------------------------- the server secret
def server_secret(data_dir: Path) -> bytes:
    """The signing key, created once (mode 0600) under the data folder; every later start reads it back."""
    path = Path(data_dir) / SECRET_FILE
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write a private temporary file, then link it into place: two first starts racing each other
        # both end up with the one secret that won, never with a half-written file.
        temporary = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 64:
        raise ValueError(f"{path} is damaged (too short); delete it to create a new secret "
                         "(every anonymous visitor then gets a new identity)")
    return bytes.fromhex(text)


# ---------------------------------------------------------------- anonymous ids
def _mac(secret: bytes, random_id: str) -> str:
    digest = hmac.new(secret, _SIGN_CONTEXT + random_id.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_anonymous_token(secret: bytes) -> str:
    """A fresh signed token "<32 hex random>.<signature>" for a new browser."""
    random_id = secrets.token_hex(ID_BYTES)
    return f"{random_id}.{_mac(secret, random_id)}"


def verify_anonymous_token(secret: bytes, token: str | None) -> str | None:
    """The owner id the token stands for, or None if it was not signed by this server."""
    match = _TOKEN.match(token or "")
    if match is None:
        return None
    random_id = match.group("id")
    if not hmac.compare_digest(_mac(secret, random_id), match.group("mac")):
        return None
    return ANONYMOUS_PREFIX + random_id


def anonymous_identity(owner_id: str, admin: bool) -> Identity:
    short = owner_id.removeprefix(ANONYMOUS_PREFIX)[:8]
    return Identity(owner_id=owner_id, display=f"anonymous visitor {short}", is_admin=admin, mode="anonymous")


# ---------------------------------------------------------------- sign-in
def signed_in_identity(subject: str, email: str | None, admins: tuple[str, ...] | list[str],
                       email_verified: bool | None = None) -> Identity:
    """A signed-in user: owned by the provider's subject (stable, never reused); admin by e-mail, unless the
    provider says that e-mail is not verified (anyone could have typed it)."""
    if not subject:
        raise ValueError("the identity provider sent no subject (sub) claim")
    admin = email_verified is not False and is_admin_email(email, admins)
    return Identity(owner_id=SIGNED_IN_PREFIX + subject, display=email or subject, is_admin=admin, mode="signed-in")


def is_admin_email(email: str | None, admins: tuple[str, ...] | list[str]) -> bool:
    """Is this e-mail one of SPINDLE_ADMINS (case-insensitive)?"""
    if not email:
        return False
    wanted = email.strip().lower()
    return any(hmac.compare_digest(wanted.encode(), a.strip().lower().encode()) for a in admins if a.strip())


def admin_token_matches(given: str | None, expected: str) -> bool:
    """Does the typed token equal SPINDLE_ADMIN_TOKEN (constant-time, so timing tells nothing)?"""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def anonymous_may_retune(admin_token: str, proved_token: bool) -> bool:
    """Without sign-in everyone may retune, unless SPINDLE_ADMIN_TOKEN is set; then only who typed it."""
    return not admin_token or proved_token
