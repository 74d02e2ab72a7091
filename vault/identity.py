"""Which vault this is, known from more than the ledger, so a lost ledger is noticed, not restarted.

A vault id (``v-`` + 16 hex digits) is made when a ledger is first initialised and kept in two
places: the ledger's ``meta`` table and the file ``data_dir/vault-id``; ``vault.id`` in the config
may pin it too. The paper account at the simulated market is keyed by it (header
``X-Paper-Account``), so two daemons are two accounts.

At start, with the ledger open:

* an initialised ledger names its vault; ``vault-id`` and ``vault.id``, where set, must agree
  (a ledger from another vault's backup is refused). A ledger from before vault ids is vault
  ``default``, the market's account for requests without the header;
* a fresh ledger with a known id (the ``vault-id`` file survived, or ``vault.id`` is set) is a
  ledger that went missing, unless this is the first start: the daemon asks the venue what it
  holds for that id, and refuses to start ("ledger missing but the venue holds X for vault Y")
  unless an operator adopts the venue's positions (``yieldvault ledger adopt --reason ...``).
  Without the ``vault-id`` file, a configured id with nothing at the venue is a first start.
* a fresh ledger and no id anywhere is a new vault: a new id, a new (empty) account.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vault.ledger import Ledger

ID_FILE = "vault-id"
LEGACY_ID = "default"


class IdentityError(Exception):
    """The ledger and the vault's id do not belong together; one line naming both."""


def new_vault_id() -> str:
    return "v-" + secrets.token_hex(8)


def read_id_file(data_dir: Path) -> str | None:
    try:
        text = (data_dir / ID_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_id_file(data_dir: Path, vault_id: str) -> None:
    path = data_dir / ID_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        handle.write(vault_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Identity:
    vault_id: str
    # The ledger is fresh but the vault is known: ask the venue before booking any capital.
    fresh_with_known_id: bool
    # ... and the vault-id file says this data dir had a ledger: it went missing.
    ledger_missing: bool


def resolve(ledger: Ledger, data_dir: Path, configured: str | None) -> Identity:
    """The vault id for ``ledger``; IdentityError when the places that name it disagree."""
    from_file = read_id_file(data_dir)
    if ledger.is_initialised():
        vault_id = ledger.vault_id() or LEGACY_ID
        for where, other in ((f"{data_dir / ID_FILE}", from_file), ("vault.id", configured)):
            if other is not None and other != vault_id:
                raise IdentityError(
                    f"ledger {ledger.path} belongs to vault {vault_id} but {where} says {other}: "
                    "a ledger from another vault? restore this vault's own ledger"
                )
        if ledger.vault_id() is None:
            ledger.set_vault_id(vault_id)
        if from_file is None:
            write_id_file(data_dir, vault_id)
        return Identity(vault_id, False, False)
    if from_file is not None and configured is not None and from_file != configured:
        raise IdentityError(
            f"{data_dir / ID_FILE} says vault {from_file} but vault.id says {configured}"
        )
    known = from_file or configured
    return Identity(known or new_vault_id(), known is not None, from_file is not None)


def refusal(identity: Identity, ledger: Ledger, held_units: dict[str, int]) -> str | None:
    """Why a fresh ledger must not start for ``identity`` given what the venue holds, or None."""
    from core.money import units_to_str

    total = sum(held_units.values())
    if not identity.fresh_with_known_id or (total == 0 and not identity.ledger_missing):
        return None
    venues = ", ".join(f"{v} {units_to_str(u)}" for v, u in sorted(held_units.items()) if u)
    return (
        f"ledger {ledger.path} missing but the venue holds {units_to_str(total)} USD for vault "
        f"{identity.vault_id}{f' ({venues})' if venues else ''}: restore the ledger (README "
        "'Restoring the ledger'), or adopt the venue's positions with "
        "`yieldvault ledger adopt --reason ...`"
    )
