"""Writes the input.txt of each CMA minute golden case. Run it only to change a case on
purpose: `.venv/bin/python -m tests.golden.cma_aws_minute.make_inputs`, then regenerate
and review."""

from pathlib import Path

from obslink.demo.simulated_cma import minute_line, minute_values

HERE = Path(__file__).parent
FILE_NAME = 'stream = "AWS_M_Z_58238_20250114.txt"\n'


def cases() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, case.toml)"""
    # the AWS day of 2025-01-14 runs from 20:01 on the 13th to 20:00 on the 14th (Beijing)
    boundary = "".join(minute_line(hhmm, minute_values(i))
                       for i, hhmm in enumerate(("2001", "2359", "0000", "0001", "2000")))
    markers = minute_values(0, temperature_tenths=-105)
    # calm, missing, a trace of rain, not observed, a blank column
    markers.update({"WD2": "PPC ", "WS2": 0, "WD10": "////", "minuR": ",,,,",
                    "Pressure": "/////", "Snowdeep": "----", "Vis_1min": "    0"})
    quality = "0" * 4 + "8" + "0" * 18 + "8" + "1" + "0" * 23
    flagged = minute_line("0802", markers, quality) + minute_line("0803", minute_values(1),
                                                                  quality=None)
    bad = minute_values(2)
    bad["WS10"] = "2.10"
    lines = [minute_line("1200", minute_values(0)), "----------\r\n", "\r\n",
             minute_line("1201", minute_values(1))[:150] + "\r\n",
             minute_line("2561", minute_values(2)), minute_line("1202", bad),
             minute_line("1203", minute_values(3))]
    return {
        "aws_day_boundary": (boundary.encode(), FILE_NAME),
        "missing_markers_and_quality": (flagged.encode(), FILE_NAME),
        "bad_lines": ("".join(lines).encode(), FILE_NAME),
        "renamed_file": (minute_line("1200", minute_values(0)).encode(),
                         'stream = "minutes.txt"\n'),
        "renamed_file_with_day_option": (b"\xef\xbb\xbf" + minute_line(
            "1200", minute_values(0)).encode(), 'stream = "minutes.txt"\n'
            '[options]\nday = "20250114"\n'),
        "utc_logger_lf": (minute_line("0600", minute_values(0)).replace("\r\n", "\n")
                          .encode(), FILE_NAME.replace('"\n', '"\n', 1)),
    }


if __name__ == "__main__":
    for name, (content, settings) in cases().items():
        tz = '"UTC"' if name == "utc_logger_lf" else '"+08:00"'
        (HERE / name).mkdir(exist_ok=True)
        (HERE / name / "input.txt").write_bytes(content)
        (HERE / name / "case.toml").write_text(f"tz = {tz}\n" + settings)
