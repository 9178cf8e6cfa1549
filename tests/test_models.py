"""Header and config models: real samples, timestamps, unknown keys, secrets never shown."""

import json
import logging
import pickle
import traceback
import warnings

import pytest
from pydantic import ValidationError

from pfflake.models import (
    REDACTED,
    ConfigError,
    ConfigModel,
    DaqConfig,
    DataConfig,
    FrameConfig,
    ModuleHeader,
    NetworkConfig,
    ObsConfig,
    PFFHeader,
    PhBaselineConfig,
    QuaboConfig,
    QuaboHeader,
    QuaboUids,
    RawConfig,
    find_secrets,
    is_secret_key,
    load_config,
    load_configs,
    redact,
    redact_text,
)
from pfflake.timestamps import QUALITY_DESYNC, QUALITY_NO_WR, QUALITY_OK, QUALITY_QUABO_MISSING
from tests.conftest import EXAMPLE_RUN, IMG16_FILE, LEGACY_RUN, REAL_PFF_FILES
from tests.naive import naive_flat, naive_read, naive_unix_t_ns

PASSWORD = "epowerpanoseti"
LEGACY_OBS = LEGACY_RUN / "obs_config.json"
REDACTED_URL = "http://admin:***@10.200.146.11"

EXPECTED_MODELS = {
    EXAMPLE_RUN: {
        "daq_config": DaqConfig,
        "data_config": DataConfig,
        "obs_config": ObsConfig,
        "quabo_config_192.168.3.248": QuaboConfig,
        "quabo_config_192.168.3.249": QuaboConfig,
        "quabo_config_192.168.3.250": QuaboConfig,
        "quabo_config_192.168.3.251": QuaboConfig,
        "quabo_config_debug": QuaboConfig,
        "quabo_ph_baseline": PhBaselineConfig,
        "quabo_uids": QuaboUids,
        "sw_info": RawConfig,
    },
    LEGACY_RUN: {
        "daq_config": DaqConfig,
        "data_config": DataConfig,
        "network_config": NetworkConfig,
        "obs_config": ObsConfig,
    },
}


def first_header(path):
    data = path.read_bytes()
    return json.loads(data[: data.index(b"\n\n")])


def every_rendering(model):
    """Every way a model gets shown: what must never hold a secret."""
    return {
        "repr": repr(model),
        "str": str(model),
        "format": f"{model}",
        "dump": repr(model.model_dump()),
        "dump_json_mode": repr(model.model_dump(mode="json")),
        "dump_json": model.model_dump_json(),
        "dump_json_indent": model.model_dump_json(indent=2),
    }


# -- real configs ----------------------------------------------------------------


@pytest.mark.parametrize("run", [EXAMPLE_RUN, LEGACY_RUN], ids=lambda p: p.name)
def test_all_real_configs_validate(run, caplog):
    with caplog.at_level(logging.WARNING, logger="pfflake.models"):
        configs = load_configs(run)
    assert not caplog.records
    assert {k: type(v) for k, v in configs.items()} == EXPECTED_MODELS[run]
    for stem, model in configs.items():
        raw = json.loads((run / f"{stem}.json").read_text())
        # Declared fields hold what the file says (where no coercion applies).
        if isinstance(model, DataConfig):
            assert model.run_type == raw["run_type"]
            assert model.max_file_size_mb == raw["max_file_size_mb"]
        if isinstance(model, RawConfig):
            assert model.reveal() == raw


def test_real_config_values():
    legacy = load_configs(LEGACY_RUN)
    assert legacy["data_config"].pulse_height.any_trigger.group_ph_frames == 1
    assert legacy["data_config"].image.quabo_sample_size == 8
    assert legacy["daq_config"].daq_nodes[0].module_ids == list(range(256))
    assert legacy["network_config"].modules[0].port_forwarding.reboot_port == [
        60004,
        60005,
        60006,
        60007,
    ]
    example = load_configs(EXAMPLE_RUN)
    assert example["quabo_config_192.168.3.248"].DAC1 == [200, 200, 200, 200]
    assert example["quabo_config_192.168.3.248"].model_extra["CHANMASK_8"] == 0x155
    assert len(example["quabo_ph_baseline"].quabos[0].coefs) == 256
    assert example["sw_info"]["commit"] == "a2f8506920e2d0ece42c5289a8f17125e33c5d51"
    assert example["sw_info"].model_dump()["author"] == "Wei Liu"  # 'author' is no secret


def test_unknown_keys_accepted_at_every_level():
    raw = json.loads((LEGACY_RUN / "daq_config.json").read_text())
    raw["new_top"] = 1
    raw["daq_nodes"][0]["new_node_key"] = "x"
    raw["daq_nodes"][0]["port_forwarding"] = {"gw_ip": "10.0.0.1", "new_pf": [1, 2]}
    cfg = DaqConfig.model_validate(raw)
    assert cfg.model_extra == {"new_top": 1}
    assert cfg.daq_nodes[0].model_extra == {"new_node_key": "x"}
    assert cfg.daq_nodes[0].port_forwarding.model_extra == {"new_pf": [1, 2]}
    net = json.loads((LEGACY_RUN / "network_config.json").read_text())
    net["modules"][0]["new_module_key"] = True
    assert NetworkConfig.model_validate(net).modules[0].model_extra == {"new_module_key": True}


def test_validation_rules_kept():
    with pytest.raises(ValidationError):
        DataConfig(run_type="has_underscore")
    with pytest.raises(ValidationError):
        DataConfig(
            run_type="ok",
            image={"integration_time_usec": 300, "pe_threshold": 1, "quabo_sample_size": 8},
        )
    with pytest.raises(ValidationError):
        DataConfig(run_type="ok", image_fast={"integration_time_usec": 1})
    raw = json.loads(LEGACY_OBS.read_text())
    raw["wps"] = {"url": "http://a:b@c"}  # quabo_socket missing
    with pytest.raises(ValidationError):
        ObsConfig.model_validate(raw)


def test_quabo_config_leaves_input_alone():
    raw = {"DAC1": "1, 2,0x3", "FOO": "a,b", "BAR": "-7"}
    cfg = QuaboConfig.model_validate(raw)
    assert raw == {"DAC1": "1, 2,0x3", "FOO": "a,b", "BAR": "-7"}
    assert cfg.DAC1 == [1, 2, 3]
    assert cfg.model_extra == {"FOO": "a,b", "BAR": -7}


# -- secrets ---------------------------------------------------------------------


def test_legacy_obs_config_password_never_shown():
    cfg = load_config(LEGACY_OBS)
    assert PASSWORD in LEGACY_OBS.read_text()  # the sample really holds it
    for how, text in every_rendering(cfg).items():
        assert PASSWORD not in text, how
    assert cfg.model_dump()["wps"]["url"] == REDACTED_URL
    assert json.loads(cfg.model_dump_json())["wps"]["url"] == REDACTED_URL
    assert REDACTED_URL in repr(cfg)


def test_legacy_obs_config_raw_access_is_explicit():
    cfg = load_config(LEGACY_OBS)
    raw = json.loads(LEGACY_OBS.read_text())
    assert cfg.reveal()["wps"] == raw["wps"]
    assert json.loads(json.dumps(cfg.reveal(mode="json")))["wps"]["url"] == raw["wps"]["url"]
    assert PASSWORD in cfg.wps["url"]  # attribute access is data access
    assert PASSWORD in pickle.loads(pickle.dumps(cfg)).reveal()["wps"]["url"]


def test_logging_a_config_does_not_leak(caplog):
    cfg = load_config(LEGACY_OBS)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("config: %s / %r", cfg, cfg)
    assert REDACTED_URL in caplog.text and PASSWORD not in caplog.text


NESTED = {
    "name": "site",
    "domes": [
        {
            "name": "d",
            "obslat": 1,
            "obslon": 2,
            "obsalt": 3,
            "modules": [
                {
                    "mobo_serialno": "M1",
                    "quabo_version": "qfp",
                    "ip_addr": "10.0.0.1",
                    "api_key": "K-one",
                    "notes": ["see ftp://u:pw-two@host/x", "plain"],
                }
            ],
        }
    ],
    "extra": {"deep": [{"Password": "pw-three"}, {"token": None}]},
    "monitor": "https://grafana/d?orgId=1&auth_token=tok-four",
    "wps2": {"url": "http://admin:p@ss-five@10.0.0.9/outlet", "quabo_socket": 2},
    "author": "not a secret",
}
NESTED_SECRETS = ["K-one", "pw-two", "pw-three", "tok-four", "p@ss-five", "ss-five"]


def test_nested_extras_and_lists_redacted():
    cfg = ObsConfig.model_validate(NESTED)
    for how, text in every_rendering(cfg).items():
        for secret in NESTED_SECRETS:
            assert secret not in text, (how, secret)
    dumped = cfg.model_dump()
    module = dumped["domes"][0]["modules"][0]
    assert module["api_key"] == REDACTED
    assert module["notes"] == ["see ftp://u:***@host/x", "plain"]
    assert dumped["extra"] == {"deep": [{"Password": REDACTED}, {"token": None}]}
    assert dumped["monitor"] == "https://grafana/d?orgId=1&auth_token=***"
    assert dumped["wps2"]["url"] == "http://admin:***@10.0.0.9/outlet"
    assert dumped["author"] == "not a secret"
    # nested models redact on their own too
    assert "K-one" not in repr(cfg.domes[0]) and "K-one" not in cfg.domes[0].model_dump_json()
    # and raw access gives everything back
    assert cfg.reveal()["extra"] == NESTED["extra"]


def test_find_secrets_paths_and_redact_plain_data():
    paths = [
        "domes[0].modules[0].api_key",
        "domes[0].modules[0].notes[0]",
        "extra.deep[0].Password",
        "monitor",
        "wps2.url",
    ]
    assert sorted(find_secrets(NESTED)) == paths
    assert sorted(find_secrets(ObsConfig.model_validate(NESTED))) == paths
    clean = redact(NESTED)
    assert find_secrets(clean) == []
    assert NESTED["extra"]["deep"][0]["Password"] == "pw-three"  # input untouched
    for secret in NESTED_SECRETS:
        assert secret not in json.dumps(clean)
    model = ObsConfig.model_validate(NESTED)
    assert redact(model) == model.model_dump()
    assert find_secrets(load_config(LEGACY_OBS)) == ["wps.url"]


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "token",
        "accessToken",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "APIKey",
        "ssh-key",
        "private_key",
        "credentials",
        "Credential",
        "auth",
        "X-Auth-Token",
        "Authorization",
    ],
)
def test_secret_key_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["author", "wps", "url", "key", "keys", "monkey", "keyboard", "username", "GAIN0"]
)
def test_non_secret_key_names(name):
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://admin:epowerpanoseti@10.200.146.11", REDACTED_URL),
        ("two http://a:b@h1 and https://c:d@h2/p", "two http://a:***@h1 and https://c:***@h2/p"),
        ("http://host:8080/path", "http://host:8080/path"),
        ("ssh://git@host/repo", "ssh://git@host/repo"),
        ("http://admin:@host", "http://admin:@host"),
        ("x?password=abc&user=me", "x?password=***&user=me"),
        ("http://admin:***@host", "http://admin:***@host"),
    ],
)
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_load_config_error_never_echoes_secrets(tmp_path):
    raw = json.loads(LEGACY_OBS.read_text())
    raw["domes"][0]["obslat"] = 100  # invalid
    raw["password"] = PASSWORD
    raw["domes"][0]["modules"][0]["elevation"] = PASSWORD  # invalid, and echoes input
    path = tmp_path / "obs_config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert isinstance(err, ValueError)
    message = str(err)
    assert "obs_config.json" in message and "obslat" in message and "elevation" in message
    shown = "".join(traceback.format_exception(err)) + repr(err)
    assert PASSWORD not in shown
    assert err.__context__ is None and err.__cause__ is None


def test_custom_validator_message_scrubbed(tmp_path):
    # run_type is echoed by its validator; a secret that also appears there is scrubbed.
    path = tmp_path / "data_config.json"
    path.write_text(json.dumps({"run_type": "a_s3cr3t", "api_token": "s3cr3t"}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "run_type" in str(info.value) and "s3cr3t" not in str(info.value)


def test_direct_validation_errors_hide_input():
    raw = json.loads(LEGACY_OBS.read_text())
    raw["domes"][0]["modules"][0]["elevation"] = PASSWORD
    with pytest.raises(ValidationError) as info:
        ObsConfig.model_validate(raw)
    assert PASSWORD not in str(info.value)


def test_bad_json_error_is_positional(tmp_path):
    path = tmp_path / "obs_config.json"
    path.write_text('{"wps": {"url": "http://admin:epowerpanoseti@h"},, }')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "obs_config.json" in str(info.value) and "JSON" in str(info.value)
    assert PASSWORD not in "".join(traceback.format_exception(info.value))
    assert info.value.__context__ is None


def test_load_configs_skips_broken_without_leaking(tmp_path, caplog):
    (tmp_path / "obs_config.json").write_text(LEGACY_OBS.read_text())
    (tmp_path / "data_config.json").write_text('{"run_type": "x", "token": "epowerpanoseti"')
    (tmp_path / "daq_config.json").write_text(
        json.dumps({"head_node_data_dir": "/d", "password": PASSWORD})  # missing fields
    )
    (tmp_path / "dp_manifest_img16.json").write_text("not json at all")
    (tmp_path / "extras.toml").write_text('name = "x"\napi_token = "epowerpanoseti"\n')
    with caplog.at_level(logging.WARNING, logger="pfflake.models"):
        configs = load_configs(tmp_path)
    assert sorted(configs) == ["extras", "obs_config"]
    assert isinstance(configs["extras"], RawConfig)
    assert configs["extras"].model_dump() == {"name": "x", "api_token": REDACTED}
    assert configs["extras"]["api_token"] == PASSWORD
    assert "data_config.json" in caplog.text and "daq_config.json" in caplog.text
    assert len(caplog.records) == 2
    assert PASSWORD not in caplog.text


def test_top_level_must_be_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected an object"):
        load_config(path)


def all_config_models():
    seen, todo = [], [ConfigModel]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


@pytest.mark.parametrize("cls", all_config_models(), ids=lambda c: c.__name__)
def test_every_config_model_redacts(cls):
    cfg = cls.model_construct(
        password="hide-me-1", link="http://u:hide-me-2@h", nested={"token": "hide-me-3"}
    )
    shown = [repr(cfg), str(cfg)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fields left unset by model_construct
        shown += [repr(cfg.model_dump()), cfg.model_dump_json()]
    for text in shown:
        assert "hide-me" not in text
    assert cfg.reveal()["nested"] == {"token": "hide-me-3"}


# -- headers ---------------------------------------------------------------------


@pytest.mark.parametrize("path", REAL_PFF_FILES, ids=lambda p: p.name[:30])
def test_header_round_trip_and_time(path):
    truth = naive_read(path)
    header = first_header(path)
    assert header == truth.headers[0]
    cls = ModuleHeader if "quabo_0" in header else QuaboHeader
    model = cls.model_validate(header)
    assert model.model_dump() == header
    assert json.loads(model.model_dump_json()) == header
    for raw in truth.headers[:50]:
        m = cls.model_validate(raw)
        kind = "module" if cls is ModuleHeader else "quabo"
        expected = naive_unix_t_ns(naive_flat(raw), kind)
        assert (m.timestamp_ns, m.timestamp_quality) == expected
        assert m.time_quality == m.timestamp_quality


def test_real_header_literal_time():
    model = ModuleHeader.model_validate(first_header(IMG16_FILE))
    # quabo_0: pkt_tai 400 = (1686198635 + 37) % 1024 -> WR second == host second
    assert model.timestamp_ns == 1686198635_480007492
    assert model.timestamp_quality == QUALITY_OK


def test_headers_strict_and_frozen():
    header = first_header(IMG16_FILE)
    with pytest.raises(ValidationError):
        ModuleHeader.model_validate({**header, "extra": 1})
    q = dict(header["quabo_0"], quabo_num=0, bogus=1)
    with pytest.raises(ValidationError):
        QuaboHeader.model_validate(q)
    model = ModuleHeader.model_validate(header)
    with pytest.raises(ValidationError):
        model.quabo_0 = model.quabo_1


S = 1_754_109_119  # a true UTC second


def tai_low(second):
    """What WR puts in pkt_tai for a packet sent in UTC second ``second``."""
    return (second + 37) % 1024


def header(tv_sec, tv_usec, pkt_nsec, pkt_tai, num=0):
    return PFFHeader(
        pkt_num=num, pkt_tai=pkt_tai, pkt_nsec=pkt_nsec, tv_sec=tv_sec, tv_usec=tv_usec
    )


@pytest.mark.parametrize(
    ("tv_sec", "tv_usec", "pkt_nsec", "pkt_tai", "expected_ns", "flags"),
    [
        # d = 0: arrived within the second it was sent
        (S, 934_500, 934_405_331, tai_low(S), 1_754_109_119_934_405_331, QUALITY_OK),
        # d = 1: sent just before the tick, host read after it
        (S + 1, 200, 999_999_000, tai_low(S), 1_754_109_119_999_999_000, QUALITY_OK),
        # d = 1023: host clock a little behind WR
        (S - 1, 999_990, 5_000, tai_low(S), 1_754_109_119_000_005_000, QUALITY_OK),
        # clocks 5 s apart: host second kept, flagged
        (S + 5, 100, 123, tai_low(S), 1_754_109_124_000_000_123, QUALITY_DESYNC),
        # no WR, packet from the end of S seen early in S+1
        (S + 1, 50, 999_999_900, 0, 1_754_109_119_999_999_900, QUALITY_NO_WR),
        # no WR, packet from the start of S+1 seen by a host clock still in S
        (S, 999_999, 100, 0, 1_754_109_120_000_000_100, QUALITY_NO_WR),
        # no WR, same second
        (S, 400_000, 400_000_123, 0, 1_754_109_119_400_000_123, QUALITY_NO_WR),
    ],
)
def test_scalar_timestamps(tv_sec, tv_usec, pkt_nsec, pkt_tai, expected_ns, flags):
    h = header(tv_sec, tv_usec, pkt_nsec, pkt_tai)
    assert h.timestamp_ns == expected_ns and type(h.timestamp_ns) is int
    assert h.timestamp_quality == flags
    q = QuaboHeader(quabo_num=2, **h.model_dump())
    assert (q.timestamp_ns, q.timestamp_quality) == (expected_ns, flags)


def test_quality_flag_values_are_the_contract():
    assert (QUALITY_OK, QUALITY_NO_WR, QUALITY_DESYNC, QUALITY_QUABO_MISSING) == (0, 1, 2, 4)


def test_module_time_skips_missing_quabo_0():
    absent = header(0, 0, 0, 0)
    q1 = header(S, 934_500, 934_405_331, tai_low(S), num=1)
    q2 = header(S, 934_600, 934_405_335, tai_low(S), num=2)
    m = ModuleHeader(quabo_0=absent, quabo_1=q1, quabo_2=q2, quabo_3=absent)
    assert m.timestamp_ns == 1_754_109_119_934_405_331
    assert m.timestamp_quality == QUALITY_QUABO_MISSING
    full = ModuleHeader(quabo_0=q2, quabo_1=q1, quabo_2=q1, quabo_3=q1)
    assert (full.timestamp_ns, full.timestamp_quality) == (1_754_109_119_934_405_335, QUALITY_OK)
    none = ModuleHeader(quabo_0=absent, quabo_1=absent, quabo_2=absent, quabo_3=absent)
    assert none.timestamp_ns == 0
    assert none.timestamp_quality == QUALITY_QUABO_MISSING | QUALITY_NO_WR


def test_frame_config_dtype():
    fc = FrameConfig(
        header_size=491,
        payload_size=2048,
        frame_size=2540,
        image_shape=(32, 32),
        dtype_str="<u2",
        bytes_per_pixel=2,
        format_name="img16",
    )
    assert fc.dtype.itemsize == 2 and fc.dtype.kind == "u"


# models.py's __all__ before it became the pfflake.models package (3d9a533): user code,
# the pypff face and notebooks import these from pfflake.models.
OLD_MODELS_ALL = [
    "INVALID_RUN_TYPE_CHARS", "MAX_RUN_TYPE_LENGTH", "MIN_MOVIE_MODE_PE_THRESHOLD",
    "MIN_PULSE_HEIGHT_PE_THRESHOLD", "REDACTED", "AnyTriggerConfig", "BaseStrictModel",
    "ConfigError", "ConfigModel", "DaemonConfig", "Daemons", "DaqConfig", "DaqNode", "DataConfig",
    "FirmwareConfig", "FlashParams", "FrameConfig", "FrozenConfigModel", "ImageMode",
    "InterleaveConfig", "InterleaveState", "LongPulseMode", "ModuleHeader", "NetworkConfig",
    "NetworkDaqNode", "NetworkModule", "ObsConfig", "ObsDomeConfig", "ObsModuleConfig",
    "PFFHeader", "PhBaselineConfig", "PortForwarding", "PulseHeightMode", "QuaboConfig",
    "QuaboHeader", "QuaboPhBaseline", "QuaboUidDome", "QuaboUidEntry", "QuaboUidModule",
    "QuaboUids", "RawConfig", "StimParams", "WpsConfig", "config_model_for", "find_secrets",
    "is_secret_key", "load_config", "load_configs", "parse_csv_ints", "redact", "redact_text",
]


def test_the_models_package_keeps_every_old_name():
    import importlib

    import pfflake.models as m

    assert sorted(m.__all__) == sorted(OLD_MODELS_ALL)
    for name in [*OLD_MODELS_ALL, "CONFIG_MODELS"]:
        obj = getattr(m, name)
        home = getattr(obj, "__module__", None)
        if isinstance(obj, type) or callable(obj):
            # the object its defining module holds, not a copy
            assert getattr(importlib.import_module(home), name) is obj, name
    assert m.logger.name == "pfflake.models"  # users and tests filter on this name
    assert m.load_configs.__module__ == "pfflake.models.loading"
