"""pfflake.redact: one table of inputs through every entry point, expected outputs written
by hand (the spec of the secret rules), plus the module's import promise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pfflake import models
from pfflake import redact as R

KEYS = [
    ("password", True),
    ("db_password", True),
    ("X-Auth-Token", True),
    ("api_key", True),
    ("ssh-key", True),
    ("privateKey", True),
    ("apikey", True),
    ("credentials", True),
    ("author", False),
    ("wps", False),
    ("key", False),  # one word: a dict key called "key" is usually a name
    ("monkey", False),
    ("keyboard_layout", False),
]


@pytest.mark.parametrize("name, secret", KEYS)
def test_is_secret_key(name, secret):
    assert R.is_secret_key(name) is secret


TEXT = [
    ("http://admin:hunter22@host/x", "http://admin:***@host/x"),
    ("https://h/x?token=abc&page=2", "https://h/x?token=***&page=2"),
    ("user=bob password=pw1 mode=fast", "user=bob password=*** mode=fast"),
    ("http://admin:***@host", "http://admin:***@host"),  # idempotent
    ("no secrets here: author=ann", "no secrets here: author=ann"),
]


@pytest.mark.parametrize("text, expected", TEXT)
def test_redact_text(text, expected):
    assert R.redact_text(text) == expected
    assert R.redact_text(expected) == expected


STRUCTURED = [
    # (input, redact(input), find_secrets(input), secret_values(input))
    ({"db_password": "s3cretpw", "name": "ok"}, {"db_password": "***", "name": "ok"},
     ["db_password"], {"s3cretpw"}),
    ({"domes": [{"token": "t0ken1", "id": 3}]}, {"domes": [{"token": "***", "id": 3}]},
     ["domes[0].token"], {"t0ken1"}),
    ({"wps": {"url": "http://u:pw123456@h/"}}, {"wps": {"url": "http://u:***@h/"}},
     ["wps.url"], {"pw123456"}),
    ({"password": "", "token": "***", "auth": None}, {"password": "", "token": "***", "auth": None},
     [], set()),
    ({"secrets": {"a": 1, "b": ["x", "y"]}}, {"secrets": "***"}, ["secrets"], {"1", "x", "y"}),
    (("plain", "http://a:b@c"), ("plain", "http://a:***@c"), ["[1]"], {"b"}),
]


@pytest.mark.parametrize("obj, clean, where, values", STRUCTURED)
def test_structured(obj, clean, where, values):
    assert R.redact(obj) == clean
    assert R.find_secrets(obj) == where
    assert R.secret_values(obj) == values
    assert R.find_secrets(R.redact(obj)) == []
    # the models face is the same engine
    assert models.redact(obj) == clean
    assert models.find_secrets(obj) == where


def test_redact_is_a_copy():
    obj = {"a": [{"token": "abcdefg"}]}
    out = R.redact(obj)
    assert obj == {"a": [{"token": "abcdefg"}]}
    out["a"].append(1)
    assert len(obj["a"]) == 1


def test_free_text_rules():
    text = '\n'.join([
        '{"api_key": "abcdef123", "name": "x"}',
        "password = hunter22",
        "  token=zzz",
        "retries = 3",
        "log: connected with secretvalue99 and pin 1234",
    ])
    out = R.redact_free_text(text, {"secretvalue99", "1234"})
    assert out.splitlines() == [
        '{"api_key": "***", "name": "x"}',
        'password = "***"',
        "  token=***",
        "retries = 3",
        # 1234 is shorter than MIN_SCRUB_LEN: logs keep short numbers intact
        "log: connected with *** and pin 1234",
    ]


def test_scrub_min_len_is_the_callers_choice():
    secrets = {"1234", "longsecret", "longsecretplus"}
    text = "pin 1234, longsecretplus, longsecret"
    assert R.scrub(text, secrets) == "pin ***, ***, ***"
    assert R.scrub(text, secrets, min_len=R.MIN_SCRUB_LEN) == "pin 1234, ***, ***"
    assert R.scrub(text, {""}) == text


def test_scrub_message_removes_every_known_value():
    msg = "invalid value 'pw1' at http://u:pw1@h; token=abc"
    assert R.scrub_message(msg, {"pw1"}) == "invalid value '***' at http://u:***@h; token=***"


def test_scrub_bytes():
    data = b"\x00\x01hunter2222\xff short"
    assert R.scrub_bytes(data, {"hunter2222", "short"}) == b"\x00\x01***\xff short"


def test_models_go_through_the_same_rules():
    cfg = models.RawConfig.model_validate({"wps": {"url": "http://u:pw123456@h/"}, "n": 1})
    assert R.redact(cfg) == {"wps": {"url": "http://u:***@h/"}, "n": 1}
    assert R.find_secrets(cfg) == ["wps.url"]
    assert "pw123456" not in repr(cfg)
    assert cfg.reveal()["wps"]["url"] == "http://u:pw123456@h/"


def test_models_face_names_are_the_redact_names():
    assert models.redact is R.redact
    assert models.is_secret_key is R.is_secret_key
    assert models.redact_text is R.redact_text
    assert models.REDACTED == R.REDACTED == "***"


def test_import_does_not_load_pydantic():
    code = "import sys, pfflake.redact; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_partially_imported_pydantic_is_not_an_error():
    """Another thread may be importing pydantic while a sidecar is scrubbed (convert_run):
    a half-initialised pydantic in sys.modules must not break redaction."""
    code = (
        "import sys, types\n"
        "sys.modules['pydantic'] = types.ModuleType('pydantic')\n"
        "sys.modules['pydantic.main'] = types.ModuleType('pydantic.main')\n"
        "from pfflake.redact import find_secrets, redact\n"
        "assert find_secrets({'password': 'x1'}) == ['password']\n"
        "assert redact({'token': 'abc'}) == {'token': '***'}\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
