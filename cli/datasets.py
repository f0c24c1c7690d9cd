"""``obslink catalog datasets list | show | update`` and ``obslink catalog settings``: the
catalog's resource records and its defaults (docs/provenance.md, "Datasets")."""

from __future__ import annotations

from obslink.cli.options import command, print_json, print_listing, with_catalog


def add_commands(catalog) -> None:
    from obslink.server.catalog.datasets import CLASSIFICATIONS

    datasets = catalog.add_parser("datasets", help="the catalog's datasets: one per station "
                                  "and product").add_subparsers(title="datasets commands",
                                                                metavar="COMMAND")
    listing = command(datasets, "list", cmd_list, "every dataset with its extent",
                      catalog=True, json=True)
    listing.add_argument("--station", default=None, help="only this station's")
    show = command(datasets, "show", cmd_show, "one dataset (--json: its WCMP2 record)",
                   catalog=True, json=True)
    show.add_argument("id", help="dataset identifier, e.g. obslink:0-20000-0-54511/surface")
    update = command(datasets, "update", cmd_update, "change a dataset's title, description, "
                     "classification or licence", catalog=True, json=True, audited=True)
    update.add_argument("id", help="dataset identifier")
    update.add_argument("--title", default=None)
    update.add_argument("--description", default=None)
    update.add_argument("--classification", default=None, choices=CLASSIFICATIONS)
    update.add_argument("--licence", default=None, help="licence or data policy text")
    settings = command(catalog, "settings", cmd_settings, "the catalog's centre id and the "
                       "defaults new datasets get", catalog=True, json=True, audited=True)
    settings.add_argument("--centre-id", default=None,
                          help="the centre's id in WCMP2 identifiers (urn:wmo:md:CENTRE:…)")
    settings.add_argument("--default-classification", default=None, choices=CLASSIFICATIONS)
    settings.add_argument("--default-licence", default=None)
    settings.add_argument("--default-interval", default=None, metavar="SECONDS",
                          help="how often a station reports when neither it nor its element "
                               "has a schedule (monitoring's expected readings)")


def _extent(dataset: dict) -> str:
    from obslink.readings import format_utc

    if dataset["time_start"] is None:
        return "no data yet"
    return f"{format_utc(dataset['time_start'])} .. {format_utc(dataset['time_end'])}"


def cmd_list(args) -> int:
    found = with_catalog(args.db, lambda catalog: catalog.datasets(args.station))
    return print_listing(
        found, args.json, "no datasets" + (f" of {args.station}" if args.station else ""),
        lambda d: f"{d['id']}  {d['classification']}  {_extent(d)}  "
                  f"{len(d['elements'])} elements  {d['title']}")


def cmd_show(args) -> int:
    from obslink.server.catalog.datasets import wcmp2

    def show(catalog):
        return catalog.dataset(args.id), catalog.catalog_settings()
    dataset, settings = with_catalog(args.db, show)
    if args.json:
        print_json(wcmp2(dataset, settings["centre_id"]))
        return 0
    for label, value in (("id", dataset["id"]), ("title", dataset["title"]),
                         ("description", dataset["description"] or ""),
                         ("station", f"{dataset['station']} ({dataset['station_name'] or ''})"),
                         ("location", f"{dataset['latitude']}, {dataset['longitude']}"),
                         ("elements", ", ".join(dataset["elements"]) or "none yet"),
                         ("extent", _extent(dataset)),
                         ("classification", dataset["classification"]),
                         ("licence", dataset["licence"] or "(none)"),
                         ("created", dataset["created_at"]), ("updated", dataset["updated_at"])):
        print(f"{label:<16}{value}")
    return 0


def cmd_update(args) -> int:
    found = with_catalog(args.db, lambda catalog: catalog.update_dataset(
        args.id, title=args.title, description=args.description,
        classification=args.classification, licence=args.licence))
    if args.json:
        print_json(found)
    else:
        print(f"{found['id']}: {found['title']} ({found['classification']}), updated "
              f"{found['updated_at']}")
    return 0


def cmd_settings(args) -> int:
    changes = {key: value for key, value in (
        ("centre_id", args.centre_id), ("default_classification", args.default_classification),
        ("default_licence", args.default_licence),
        ("default_interval_s", args.default_interval)) if value is not None}
    found = with_catalog(args.db, lambda catalog: catalog.update_catalog_settings(**changes)
                         if changes else catalog.catalog_settings())
    if args.json:
        print_json(found)
    else:
        for key, value in found.items():
            print(f"{key:<24}{value}")
    return 0
