"""Writes the input.dat of each TOB1 golden case. Run it only to change a case on purpose:
`.venv/bin/python -m tests.golden.tob1.make_inputs`, then regenerate and review."""

from datetime import datetime
from pathlib import Path

from obslink.demo.simulated_tob1 import NAN, write_tob1

HERE = Path(__file__).parent
T0 = datetime(2026, 2, 19, 9, 45, 59, 5000)
ALL_TYPES = [("batt", "V", "FP2"), ("t_air", "degC", "IEEE4"), ("t_precise", "degC", "IEEE8"),
             ("count", "", "UINT2"), ("big", "", "UINT4"), ("delta", "", "INT2"),
             ("signed", "", "LONG"), ("flag", "", "BOOL"), ("bits", "", "BOOL8"),
             ("label", "", "ASCII(8)")]
ALL_VALUES = [
    [12.34, -0.0310868, 4.09545187592563e-12, 23524, 8906000, -5, -42, True, 0b10110001,
     "north"],
    [-0.188, NAN, -1.5, 0, 4294967295, 32767, 2147483647, False, 0, ""],
    [NAN, 1e30, NAN, 65535, 0, -32768, -2147483648, True, 255, "12345678"],
    [float("inf"), -0.0, 0.0, 1, 1, 0, 0, False, 1, "x"],
]

if __name__ == "__main__":
    cases = {}
    data, _ = write_tob1(ALL_TYPES, [(T0.replace(second=59 - i), v)
                                     for i, v in enumerate(ALL_VALUES)])
    cases["all_types"] = data
    cases["truncated_record"] = data[:-7]
    cases["header_only"] = data[:data.index(b'"ASCII(8)"\r\n') + 12]
    cases["not_tob1"] = b'"TOA5","x"\r\n"TIMESTAMP"\r\n'
    unsupported, _ = write_tob1([("x", "", "IEEE4")], [(T0, [1.0])])
    cases["unsupported_type"] = unsupported.replace(b'"IEEE4"', b'"IEEE2"')
    for name, content in cases.items():
        (HERE / name).mkdir(exist_ok=True)
        (HERE / name / "input.dat").write_bytes(content)
        (HERE / name / "case.toml").write_text('tz = "+08:00"\n')
