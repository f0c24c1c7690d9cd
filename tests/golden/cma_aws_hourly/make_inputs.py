"""Writes the input.txt of each CMA hourly golden case. Run it only to change a case on
purpose: `.venv/bin/python -m tests.golden.cma_aws_hourly.make_inputs`, then regenerate
and review."""

from datetime import datetime
from pathlib import Path

from obslink.demo.simulated_cma import hourly_record, thousand_minus

HERE = Path(__file__).parent
HOUR = datetime(2025, 1, 14, 6)  # UTC, as in the file name Z_SURF_I_58238_20250114060000_…


def cases() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, case.toml)"""
    plain = hourly_record("58238", HOUR)
    second = hourly_record("58238", HOUR.replace(hour=7), {"T": thousand_minus(-8), "P": "10185"})
    bad = hourly_record("58238", HOUR, quality=("0", "9", "9"))
    bad = bad.replace("TH 1012 0999 0503", "TH 0999 0503")  # one value short
    bad = bad.replace("WI 045 023", "WI 045 02x")  # a value that is not one
    bad = bad.replace("Q2 " + "9" * 8, "Q2 " + "9" * 7)  # quality digits short
    return {
        "original_record": (plain.encode(), 'stream = "Z_SURF_I_58238_20250114060000_O_AWS'
                            '_FTM.txt"\n'),
        "correction_with_bom": (b"\xef\xbb\xbf" + hourly_record(
            "58238", HOUR, {"T": thousand_minus(-14)}, correction="CCA").encode(),
            'stream = "Z_SURF_I_58238_20250114060000_O_AWS_FTM-CCA.txt"\n'),
        "two_records_and_noise": ((plain + "\x00garbage line\r\n\r\n" + second).encode(),
                                  ""),
        "bad_sections": (bad.encode(), ""),
        "truncated_record": (plain.encode()[:-30], ""),
        "gbk_weather_text": (hourly_record("58238", HOUR, weather="轻雾 霾.",
                                           quality=None).encode("gbk"), ""),
        "other_station": (hourly_record("58239", HOUR).encode(),
                          '[options]\nstation_number = "58238"\n'),
        # calm (PPC, speed 0), north written 000, snow in tenths of cm, rain in the hour
        "calm_snow_and_minute_rain": (hourly_record("58238", HOUR, {
            "WD2": "PPC", "WS2": "000", "WD10": "000", "WS10": "012", "WD": "PPC",
            "WS": "000", "SnowD": "0125", "SnowP": "035", "T": thousand_minus(-116),
            "HRain": "0003", "HMRain": "00" * 30 + "0102" + "00" * 28}).encode(), ""),
    }


if __name__ == "__main__":
    for name, (content, settings) in cases().items():
        (HERE / name).mkdir(exist_ok=True)
        (HERE / name / "input.txt").write_bytes(content)
        (HERE / name / "case.toml").write_text('tz = "+08:00"\n' + settings)
