"""``obslink parse FILE --format cinrad|nexrad2``: a radar product's metadata, as the agent
would read it before shipping the product (exit 0), or why it would be quarantined (exit 1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from obslink.plugins.products import ProductFormatError
from obslink.readings import format_utc

EXIT_READ, EXIT_REFUSED = 0, 1


def parse_product(path: Path, format_class, as_json: bool) -> int:
    try:
        with open(path, "rb") as stream:
            metadata = format_class().read_metadata(stream, path.name)
    except ProductFormatError as error:
        print(f"{path}: not a whole {format_class.name} product, the agent would quarantine "
              f"it: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if as_json:
        print(json.dumps(metadata.as_dict(), indent=1))
        return EXIT_READ
    end = "" if metadata.end_us is None else f" (last radial {format_utc(metadata.end_us)})"
    position = ("unknown" if metadata.latitude is None else
                f"{metadata.latitude}, {metadata.longitude}, {metadata.height_m} m")
    lines = [f"format        {metadata.format} ({metadata.kind}, "
             f"{'complete' if metadata.complete else 'incomplete'})",
             f"site          {metadata.site}"
             + (f" ({metadata.site_name})" if metadata.site_name else ""),
             f"position      {position}",
             f"scan start    {format_utc(metadata.start_us)}{end}",
             f"strategy      {metadata.scan_strategy or 'unknown'}",
             f"sweeps        {len(metadata.sweeps)}"]
    lines += [f"  {sweep.number:>3}  {sweep.elevation_deg:6.2f}°  {sweep.radials:5} radials  "
              f"{' '.join(sweep.moments) or 'no moments'}" for sweep in metadata.sweeps]
    lines += [f"{key:<13} {value}" for key, value in metadata.extra.items()
              if value is not None]
    print("\n".join(lines))
    return EXIT_READ
