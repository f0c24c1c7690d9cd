"""``obslink catalog provenance | export-provenance | verify | tree-head | consistency``:
identifiers resolved to their provenance, and the catalog proving itself
(docs/provenance.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from obslink.cli.options import (add_collector_key_option, collector_signing_key, command,
                                 print_json, with_catalog)


def add_commands(catalog) -> None:
    provenance = command(catalog, "provenance", cmd_provenance, "the provenance chain of a "
                         "batch or observation identifier (obslink:STATION/EPOCH/SEQ[/N])",
                         catalog=True, json=True)
    provenance.add_argument("id", help="identifier, e.g. obslink:0-20000-0-54511/3f2a…/17/4")
    provenance.add_argument("--prov", action="store_true", help="print W3C PROV-JSON")
    add_collector_key_option(provenance, "to sign a tree head when none holds the batch yet",
                             make=False)
    export = command(catalog, "export-provenance", cmd_export, "write a self-contained "
                     "bundle a third party checks with the station's and the collector's "
                     "public keys (docs/provenance.md)", catalog=True)
    export.add_argument("id", help="batch or observation identifier")
    export.add_argument("--out", type=Path, required=True, help="the bundle file (JSON)")
    add_collector_key_option(export, "to sign a tree head when none holds the batch yet",
                             make=False)
    verify = command(catalog, "verify", cmd_verify, "re-check the whole catalog offline: "
                     "signatures, every row against its signed batch, every product against its "
                     "signed manifest, the log against the signed tree heads; exit 1 when "
                     "anything differs", catalog=True, json=True)
    verify.add_argument("--collector-pub", type=Path, default=None,
                        help="the collector's public key (collector.pub) tree heads must be "
                        "signed with (default: the key kept with each head)")
    verify.add_argument("--product-store", type=Path, default=None, metavar="DIR",
                        help="where the collector keeps products, whose files are checked "
                        "against their signed manifests (default: CATALOG.products)")
    heads = command(catalog, "tree-head", cmd_tree_head, "the log's newest signed tree heads "
                    "(--sign: sign one now)", catalog=True, json=True)
    heads.add_argument("--sign", action="store_true", help="sign the tree head now")
    heads.add_argument("--limit", type=int, default=5, help="heads listed (default 5)")
    add_collector_key_option(heads, "to sign with (--sign)", make=False)
    consistency = command(catalog, "consistency", cmd_consistency, "a consistency proof: "
                          "the log of OLD leaves is a prefix of the log of NEW",
                          catalog=True, json=True)
    consistency.add_argument("old", type=int, help="the older tree size")
    consistency.add_argument("new", type=int, help="the newer tree size")


def cmd_provenance(args) -> int:
    from obslink.server.catalog.prov_json import to_prov_json
    from obslink.server.catalog.provenance import resolve

    key = collector_signing_key(args.db, args.collector_key, make=False)
    chain = with_catalog(args.db, lambda catalog: resolve(catalog, args.id, key))
    if args.prov:
        print_json(to_prov_json(chain))
    elif args.json:
        print_json(chain)
    else:
        _print_chain(chain)
    return 0


def _print_chain(chain: dict) -> None:
    batch, signature, source, log = (chain["batch"], chain["signature"], chain["source"],
                                     chain["log"])
    lines = [f"{chain['id']} ({chain['kind']}, dataset {chain['dataset']})"]
    if "observation" in chain:
        obs = chain["observation"]
        lines += [f"  observation  {obs['observed_at']} {obs['element']} = {obs['value']} "
                  f"{obs['unit']} (source field {obs['source_field']}"
                  + (f", flag {obs['source_flag']}" if obs["source_flag"] else "") + ")",
                  f"  QC           flag {obs['qc']}; ran {', '.join(obs['qc_ran']) or 'none'}"
                  f"; flagged by {', '.join(obs['qc_flagged']) or 'none'}",
                  f"  as signed    {'matches the row' if obs['matches_signed'] else 'DIFFERS'}"]
    lines += [
        f"  station      {chain['station']['id']} ({chain['station']['name'] or 'unnamed'})",
        f"  signed by    key {signature['key_id']} ({signature['key_status_when_received']} "
        f"when received, {signature['key_status_now']} now); signature "
        f"{'valid' if signature['valid'] else 'INVALID'} over the {signature['signed']}",
        f"  body         {signature['body_sha256']} (SHA-256)",
        f"  source       {source['name'] or '?'} bytes {source['byte_start']}.."
        f"{source['byte_end']} sha256 {source['sha256'] or '?'}",
        f"  adapter      {source['adapter']} {source['adapter_version']}",
        f"  QC origin    {chain['qc']['origin'] or '?'}",
        f"  clock        synced {chain['clock']['synced']}, offset "
        f"{chain['clock']['offset_ms']} ms",
        f"  times        created {batch['created_at']}, received {batch['received_at']}, "
        f"committed {batch['committed_at']} by collector {batch['committed_by'] or '?'}"]
    if log.get("tree_head"):
        head = log["tree_head"]
        lines.append(f"  log          leaf {log['index']} of {head['size']} under the tree head "
                     f"signed {head['signed_at']} by {head['key_id']}: inclusion "
                     f"{'verified' if log['verified'] else 'NOT VERIFIED'}")
    else:
        lines.append(f"  log          leaf {log['index']}: {log.get('note', '')}")
    print("\n".join(lines))


def cmd_export(args) -> int:
    from obslink.server.catalog.provenance_bundle import export_bundle

    key = collector_signing_key(args.db, args.collector_key, make=False)
    bundle = with_catalog(args.db, lambda catalog: export_bundle(catalog, args.id, key))
    args.out.write_text(json.dumps(bundle, indent=2) + "\n")
    print(f"wrote {args.out}: check it with the recipe in docs/provenance.md, the station's "
          "public key and the collector's (collector.pub)")
    return 0


def cmd_verify(args) -> int:
    from obslink.keys import load_public_key, public_bytes
    from obslink.server.catalog.self_check import verify_catalog

    collector = public_bytes(load_public_key(args.collector_pub)) if args.collector_pub \
        else None

    def progress(batches: int) -> None:
        print(f"\rchecked {batches} batches", end="", file=sys.stderr, flush=True)

    def check(catalog):
        from obslink.server.product_store import ProductStore, default_product_store

        files = None  # a catalog by URL without products needs no store to check them
        if args.product_store or not isinstance(args.db, str) or catalog.product_records(0, 1):
            files = ProductStore(args.product_store or
                                 default_product_store(catalog.location)).check_file
        return verify_catalog(catalog, collector, progress if sys.stderr.isatty() else None,
                              files)
    report = with_catalog(args.db, check)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"checked {report.batches} batches, {report.observations} observations, "
              f"{report.products} products, {report.leaves} log leaves, "
              f"{report.tree_heads} signed tree heads"
              + (f" ({report.unsigned_leaves} newest leaves not under a signed head yet)"
                 if report.unsigned_leaves else "")
              + (f"; {report.retired_observations} observations retired into archive "
                 "files (their batches checked)" if report.retired_observations else ""))
        for problem in report.problems:
            print(f"{problem['kind']}: {problem['where']}: {problem['problem']}")
        print("the catalog matches what was signed" if not report.problems else
              f"{len(report.problems)} problems found")
    return 0 if not report.problems else 1


def cmd_tree_head(args) -> int:
    from obslink.server.catalog.provenance import show_tree_head

    key = collector_signing_key(args.db, args.collector_key, make=False, required=True) \
        if args.sign else None

    def heads(catalog):
        if key is not None:
            catalog.sign_tree_head(key)
        return catalog.tree_size(), [show_tree_head(h) for h in catalog.tree_heads(args.limit)]
    size, found = with_catalog(args.db, heads)
    if args.json:
        print_json({"log_size": size, "tree_heads": found})
        return 0
    print(f"the log holds {size} leaves (one per committed batch)")
    if not found:
        print("no signed tree head yet: `collector serve` signs one every "
              "--tree-head-interval, or pass --sign")
    for head in found:
        print(f"{head['signed_at']}  size {head['size']}  root {head['root']}  "
              f"key {head['key_id']}")
    return 0


def cmd_consistency(args) -> int:
    from obslink.server.catalog import merkle

    def proof(catalog):
        old_root, new_root, steps = catalog.consistency(args.old, args.new)
        return {"old_size": args.old, "old_root": old_root.hex(), "new_size": args.new,
                "new_root": new_root.hex(), "proof": [step.hex() for step in steps],
                "verified": merkle.verify_consistency(args.old, args.new, old_root,
                                                      new_root, steps)}
    found = with_catalog(args.db, proof)
    if args.json:
        print_json(found)
    else:
        print(f"{found['old_size']} leaves, root {found['old_root']}\n"
              f"{found['new_size']} leaves, root {found['new_root']}\n"
              f"proof: {' '.join(found['proof']) or '(empty)'}\n"
              f"{'consistent' if found['verified'] else 'NOT consistent'}")
    return 0 if found["verified"] else 1
