"""Check every audit hash chain from its first row; exit 1 at the first broken link.

Prints each chain's head (last row id and hash): note it down outside the database, and a later run
whose chain no longer passes through that head shows the log was rewritten (docs/security.md).
"""

from django.core.management.base import BaseCommand, CommandError

from clinics.audit_chain import chain_verify, chains

PROBLEMS = {
    "changed": "its fields no longer match its hash (changed after it was written)",
    "unlinked": "it does not follow the row before it (a row before it was deleted, inserted or re-hashed)",
}


class Command(BaseCommand):
    help = "Verify the tamper-evident audit logs (hash chains); exit status 1 if one is broken."

    def add_arguments(self, parser):
        parser.add_argument("--chain", action="append", default=[], help="Only this chain (repeat).")

    def handle(self, *args, chain: list[str], **options):
        selected = [c for c in chains() if not chain or c.name in chain]
        unknown = set(chain) - {c.name for c in selected}
        if unknown:
            raise CommandError(f"Unknown chain: {', '.join(sorted(unknown))}.")
        broken = []
        for each in selected:
            report = chain_verify(each)
            if report.ok:
                self.stdout.write(
                    f"{each.name}: OK, {report.rows_checked} rows; head row {report.head_id or '-'} "
                    f"hash {report.head_hash}"
                )
            else:
                broken.append(each.name)
                self.stdout.write(
                    f"{each.name}: BROKEN at row {report.broken_id}: {PROBLEMS[report.problem]}; "
                    f"{report.rows_checked} rows before it are intact (last good hash {report.head_hash})"
                )
        if broken:
            raise CommandError(f"Audit chain broken: {', '.join(broken)}.", returncode=1)
