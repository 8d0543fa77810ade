"""Privacy (DESIGN §11): deletion requests, the suppression list, retention and the scan.

- `identity`  where each raw stream keeps a customer's identifiers, the salted hash, and
              resolving one person (a platform id or a CRM id) to all their identifiers;
- `forget`    `csw privacy forget`: remove a person from every store and rebuild what derives;
- `suppress`  the suppression list of forgotten persons (hashes only), applied at load time;
- `retention` `csw privacy retain` / the `cs_retention` DAG: per-stream retention;
- `scan`      `csw privacy scan`: raw identifiers found in any output is a failure.

See docs/privacy.md.
"""
