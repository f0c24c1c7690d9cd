"""Writes the input.bin of each HJ 212 golden case. Run it only to change a case on purpose:
`.venv/bin/python tests/golden/hj212/make_inputs.py`, then regenerate and review expected.json."""

from pathlib import Path

from obslink.plugins.hj212 import frame

HERE = Path(__file__).parent
AIR = ("QN=20251103101500123;ST=22;CN={cn};PW=123456;MN=AQ0001;Flag={flag};CP=&&"
       "DataTime={time};{values}&&")


def packet(cn="2011", flag=5, time="20251103101500", values="a34004-Rtd=35.2,a34004-Flag=N",
           crc="hj212") -> bytes:
    return frame(AIR.format(cn=cn, flag=flag, time=time, values=values).encode(), crc)


def receive_log(packets: list[bytes]) -> bytes:
    """What a data centre's receiver logs: a timestamp line, the packet on a line of its own
    ended CR CR LF, the Modbus exchange with the instrument in hex between packets."""
    lines = []
    for second, framed in enumerate(packets):
        lines.append(f"[2025-11-03 10:15:{second:02d}.120] RECV 10.2.0.17:5000 "
                     f"({len(framed) - 2} bytes):\r\n".encode())
        lines.append(framed[:-2] + b"\r\r\n")
        lines.append(b"SEND 01 03 00 00 00 0A C5 CD\r\nRECV 01 03 14 00 01 00 02\r\n")
    return b"".join(lines)


CASES = {
    "realtime_with_reply": packet(),
    "minute_data_flags": packet("2051", 4, "20251103101400", ";".join([
        "a34004-Avg=35.2,a34004-Max=40.1,a34004-Min=30.0,a34004-Flag=N",
        "a21026-Avg=0.012,a21026-Flag=D", "a01001-Avg=12.5,a01001-Flag=M",
        "a99999-Avg=7,a99999-Flag=N"])),
    "hourly_and_daily_periods": packet("2061", 4, "20251103090000",
                                       "w01018-Avg=18.5,w01018-Cou=2.3,w01018-Flag=N")
    + packet("2031", 4, "20251102000000", "w21003-Avg=0.41,w21003-Flag=T"),
    "noise_between_packets": b"\x00\x00" + packet() + b"\x01\x03\x00\x00\x00\x0a\xc5\xcd"
    + packet(values="a34002-Rtd=61,a34002-Flag=N") + b"\x00\r\n" + packet(flag=4),
    "lost_hash": packet()[2:] + packet(values="a05024-Rtd=0.08,a05024-Flag=N"),
    "long_packet": packet("2051", 4, values=";".join(
        f"a25{n:03d}-Avg={n}.5,a25{n:03d}-Flag=N" for n in range(2, 60))),
    "crc_mismatch": packet()[:-6] + b"0000\r\n" + packet(flag=4),
    "crc_modbus_device": packet(crc="modbus"),
    "crc_modbus_swapped_device": packet(crc="modbus-swapped"),
    "replies_and_commands": frame(b"QN=20251103101500123;ST=91;CN=9014;PW=123456;MN=AQ0001;"
                                  b"Flag=4;CP=&&&&")
    + frame(b"QN=20251103101500123;ST=22;CN=1062;PW=123456;MN=AQ0001;Flag=5;"
            b"CP=&&RtdInterval=30&&"),
    "hj212_2005_packet": frame(b"ST=32;CN=2011;PW=123456;MN=88888880000001;"
                               b"CP=&&DataTime=20250101120000;011-Rtd=52.1,011-Flag=N;"
                               b"060-Rtd=1.2,060-Flag=N&&"),
    "bad_times_and_values": packet(time="20251340101500") + packet(values="a34004-Rtd=abc")
    + frame(b"QN=1;ST=22;CN=2011;PW=1;MN=AQ0001;Flag=4;CP=&&a34004-Rtd=1&&")
    + packet(values="a34004-Rtd=,a34004-Flag=D"),
    "truncated_stream": packet() + packet()[:40],
    "equipment_runtime_2041": packet("2041", 4, "20251102000000", "SB1-RT=23.5;SB2-RT=12"),
    "receive_log": receive_log([
        packet(), packet(values="a34002-Rtd=61,a34002-Flag=N"),
        packet("2051", 4, "20251103101400", "a21026-Avg=0.012,a21026-Flag=N")]),
}

if __name__ == "__main__":
    for name, data in CASES.items():
        case = HERE / name
        case.mkdir(exist_ok=True)
        (case / "input.bin").write_bytes(data)
        options = {"crc_modbus_device": 'crc = "modbus"',
                   "crc_modbus_swapped_device": 'crc = "modbus-swapped"'}.get(name, "")
        (case / "case.toml").write_text(
            'tz = "+08:00"\n' + (f"[options]\n{options}\n" if options else ""))
