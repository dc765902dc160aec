"""`docker rmi` and `docker image prune`, with dockerd's rules for names, children and containers.

Removing by name untags; the image goes too once no name is left, unless something holds it.
Removing by id deletes. What holds an image: a child built FROM it (a hard conflict: never
forced), a running container (hard), other names (soft: `force` overrides) and a stopped
container (soft). A deleted image's parent goes with it when nothing holds the parent either
(unless `noprune`). An image a container uses is never unpacked away from under it: forced,
it loses its names and stays, dangling, until its last container goes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Conflict
from .store import HEX64, Image, ImageStore, normalize

if TYPE_CHECKING:
    from ..containers.model import Container

CHILD, RUNNING, NAMES, STOPPED = 1, 2, 4, 8
HARD = CHILD | RUNNING
SOFT = NAMES | STOPPED


@dataclass(frozen=True)
class User:
    """A container that uses an image (its id, and whether it runs: a paused one does)."""

    id: str
    running: bool


Users = Mapping[str, Sequence[User]]  # by image id
LIVE = ("running", "paused", "restarting")


def users_of(containers: Iterable[Container]) -> dict[str, list[User]]:
    """The containers of each image, by image id."""
    found: dict[str, list[User]] = {}
    for c in containers:
        found.setdefault(c.spec.image_id, []).append(User(c.id, c.state.status in LIVE))
    return found


class DeleteConflict(Conflict):
    def __init__(self, image: Image, hard: bool, message: str, used: bool = False) -> None:
        forced = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {image.id[7:19]} ({forced}) - {message}")
        self.used = used


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer chain ids dockerd reports as deleted: each layer's id folds in those below."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else
                     "sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def is_id_ref(image: Image, ref: str) -> bool:
    hexref = ref.strip().removeprefix("sha256:")
    return bool(HEX64.match(hexref)) and image.id.removeprefix("sha256:").startswith(hexref)


class Deleter:
    def __init__(self, store: ImageStore, users: Users) -> None:
        self.store = store
        self.users = users
        self.freed = 0

    def conflict(self, image: Image, mask: int) -> DeleteConflict | None:
        users = self.users.get(image.id, ())
        if mask & CHILD and self.store.children(image.id):
            return DeleteConflict(image, True, "image has dependent child images")
        running = [u for u in users if u.running]
        if mask & RUNNING and running:
            return DeleteConflict(image, True, f"image is being used by running container {running[0].id[:12]}",
                                  used=True)
        if mask & NAMES and image.tags:
            return DeleteConflict(image, False, "image is referenced in multiple repositories")
        stopped = [u for u in users if not u.running]
        if mask & STOPPED and stopped:
            return DeleteConflict(image, False, f"image is being used by stopped container {stopped[0].id[:12]}",
                                  used=True)
        return None

    def remove(self, ref: str, force: bool, prune: bool) -> list[dict[str, str]]:
        image = self.store.resolve(ref)
        records: list[dict[str, str]] = []
        quiet = False
        if not is_id_ref(image, ref):
            name = normalize(ref)
            users = self.users.get(image.id, ())
            if not force and len(image.tags) == 1 and users:
                raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                               f"container {users[0].id[:12]} is using its referenced image {image.id[7:19]}")
            self.store.untag(image, name)
            records.append({"Untagged": name})
            if len(image.tags) > 1:
                return records
            quiet = True
        elif len(image.tags) == 1:
            found = self.conflict(image, HARD if force else HARD | STOPPED)
            if found:
                raise found
            self.store.untag(image, image.tags[0])
            records.append({"Untagged": image.tags[0]})
        self._delete(image.id, records, force, prune, quiet)
        return records

    def _delete(self, image_id: str, records: list[dict[str, str]], force: bool, prune: bool,
                quiet: bool) -> None:
        image = self.store.by_id(image_id)
        if image is None:
            return
        found = self.conflict(image, HARD if force else HARD | SOFT)
        if found:
            dangling = not image.tags and not self.store.children(image.id)
            if quiet and (not dangling or found.used):
                return
            raise found
        for tag in image.tags:
            self.store.untag(image, tag)
            records.append({"Untagged": tag})
        if self.users.get(image.id):
            return  # forced past a stopped container: it keeps the image's layers, dangling
        freed_layers, freed = self.store.delete(image)
        self.freed += freed
        records.append({"Deleted": image.id})
        chains = chain_ids(image.diff_ids)
        records += [{"Deleted": chains[i]} for i in reversed(range(len(chains)))
                    if image.diff_ids[i] in freed_layers]
        if prune and image.parent:
            self._delete(image.parent, records, False, True, True)


def remove(store: ImageStore, ref: str, users: Users, force: bool = False, prune: bool = True
           ) -> list[dict[str, str]]:
    """DELETE /images/{name}: Docker's records of what was untagged and deleted."""
    with store.exclusive():
        return Deleter(store, users).remove(ref, force, prune)


def prune(store: ImageStore, users: Users, dangling_only: bool, until: float | None,
          labels: Any) -> dict[str, Any]:
    """POST /images/prune: dangling images (or, with dangling=false, every unused one).

    labels(image) says whether the label filters keep the image in the prune. Images in use
    are skipped without a word, as dockerd skips them.
    """
    from ..fsutil import parse_rfc3339

    with store.exclusive():
        deleter = Deleter(store, users)
        records: list[dict[str, str]] = []
        for image in store.images():
            current = store.by_id(image.id)
            if current is None:
                continue  # went with a child pruned before it
            children = store.children(image.id)
            if (dangling_only and children) or (not current.tags and children):
                continue
            if until is not None and parse_rfc3339(current.created) > until:
                continue
            if not labels(current):
                continue
            if current.tags and dangling_only:
                continue
            refs = list(current.tags) if current.tags else [current.id]
            for ref in refs:
                try:
                    records += deleter.remove(ref, False, True)
                except Conflict:
                    continue
    store.events.emit("image", "prune", "", reclaimed=str(deleter.freed))  # as dockerd logs a prune
    return {"ImagesDeleted": records or None, "SpaceReclaimed": deleter.freed}
