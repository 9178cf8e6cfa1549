"""Run furniture: the hk.pff records and the JSON configs and sentinels of a simulated run.

The configs carry credentials (:data:`~pfflake.simulate.SIM_SECRETS`) so that
tests can check they never leak into a lake, a store or a message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..products import get_product
from .truth import SIM_SECRETS


def quabo_ips(module: int) -> list[str]:
    """A module's four quabo IP addresses: module id = (third octet * 256 + fourth) >> 2."""
    if not 0 <= module <= 255:
        raise ValueError(f"module id must be 0..255, got {module}")
    base = module * 4
    return [f"192.168.{(base + q) >> 8}.{(base + q) & 255}" for q in range(4)]


def hk_records(start: datetime, duration_s: float, modules: Sequence[int], seed: int):
    rng = np.random.default_rng([seed, 7])
    records: list[tuple[str, dict[str, str]]] = []
    t0 = start.timestamp()
    for k in range(int(np.ceil(duration_s)) + 1):
        utc = t0 + k + 0.1
        records.append(("WPS", {"Computer_UTC": f"{utc:.6f}", "POWER": "ON"}))
        for module in modules:
            for q in range(4):
                board = module * 4 + q
                fields = {"Computer_UTC": f"{utc + 0.01 * q:.7f}", "BOARDLOC": str(board)}
                for i in range(4):
                    fields[f"HVMON{i}"] = str(round(-55.0 + rng.normal(0, 0.2), 5))
                fields["TEMP1"] = str(round(40.0 + 0.01 * k + rng.normal(0, 0.1), 2))
                fields["TEMP2"] = str(64.0 + rng.normal(0, 0.2))
                fields["UID"] = f"0x{rng.integers(0, 2**62):016x}"
                fields["SHUTTER_STATUS"] = "0"
                records.append((f"QUABO_{board}", fields))
        ports = {f"Port{p:2d}_LINK": "1" if p in (2, 13) else "0" for p in range(1, 19)}
        records.append(("WRSWITCH", {"Computer_UTC": f"{utc:.7f}", **ports, "SOFTPLL": "1"}))
    return records


def write_configs(
    run_dir: Path,
    observatory: str,
    run_type: str,
    products: Sequence[str],
    modules: Sequence[int],
    frame_rate_hz: float,
    end: datetime,
    max_file_bytes: int,
) -> dict[str, Path]:
    names = {get_product(p).name for p in products}
    obs = {
        "name": observatory,
        "comment": "simulated by pfflake.simulate",
        "wps": {"url": f"http://admin:{SIM_SECRETS[0]}@10.0.0.5", "quabo_socket": 1},
        "wr_ip_addr": "10.0.1.36",
        "wr_switch": {"user": "root", "password": SIM_SECRETS[1]},
        "gps_port": "/dev/ttyUSB0",
        "domes": [
            {
                "obslat": 37.3414,
                "obslon": -121.6429,
                "obsalt": 1283,
                "name": "north dome",
                "modules": [
                    {
                        "mobo_serialno": f"M{m}",
                        "quabo_version": "qfp",
                        "ip_addr": quabo_ips(m)[0],
                        "wps": "wps",
                        "azimuth": 77,
                        "elevation": 77,
                        "position_angle": 77,
                    }
                    for m in modules
                ],
            }
        ],
    }
    data: dict = {"run_type": run_type, "detector_overvoltage": 3, "gain": 60}
    if names & {"img16", "img8"}:
        data["image"] = {
            "integration_time_usec": round(1e6 / frame_rate_hz),
            "pe_threshold": 2.0,
            "quabo_sample_size": 16 if "img16" in names else 8,
        }
    if names & {"ph256", "ph1024"}:
        data["pulse_height"] = {
            "pe_threshold": 7.5,
            "any_trigger": {"group_ph_frames": 1 if "ph1024" in names else 0},
            "two_pixel_trigger": 0,
            "three_pixel_trigger": 0,
        }
    data["max_file_size_mb"] = max(1, -(-max_file_bytes // 2**20))
    daq = {
        "head_node_data_dir": "/data/panoseti_data",
        "head_node_ip_addr": "192.168.1.100",
        "daq_nodes": [
            {
                "username": "panoseti",
                "data_dir": "/data/panoseti_data",
                "ip_addr": "192.168.1.100",
                "module_ids": ",".join(map(str, modules)),
                "bindhost": "enp3s0",
            }
        ],
    }
    sw = {
        "commit": "0000000000000000000000000000000000000000",
        "author": "pfflake.simulate",
        "branch": "master",
        "commit_date": "2024-01-01 00:00:00",
    }
    uids = {
        "domes": [
            {
                "modules": [
                    {
                        "ip_addr": quabo_ips(m)[0],
                        "quabos": [{"uid": f"{m:04x}{q:011x}"} for q in range(4)],
                    }
                    for m in modules
                ]
            }
        ]
    }
    documents = {
        "obs_config": obs,
        "data_config": data,
        "daq_config": daq,
        "sw_info": sw,
        "quabo_uids": uids,
    }
    for module in modules:
        for q, ip in enumerate(quabo_ips(module)):
            quabo = {f"CHANMASK_{i}": "0xffffffff" for i in range(8)}
            quabo |= {"GOEMASK": "0x3", "GAIN0": "60,60,60,60", "QUABO": str(q)}
            documents[f"quabo_config_{ip}"] = quabo
    paths = {}
    for stem, document in documents.items():
        paths[stem] = run_dir / f"{stem}.json"
        paths[stem].write_text(json.dumps(document, indent=4) + "\n")
    stamp = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for sentinel in ("collect_complete", "run_complete", "recording_ended"):
        paths[sentinel] = run_dir / sentinel
        paths[sentinel].write_text(stamp + "\n")
    return paths
