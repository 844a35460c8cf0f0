"""Textual's Footer without its leak (Textual 8.2).

The footer composes its keys again whenever the bindings shown change (a restart, pause,
finish), and binds each new key to its own `compact` reactive. Textual forgets such a binding
only when `compact` changes, which it never does here, so every old key and its styles stayed
alive: about 300 KB per restart of a run. After each recompose, bindings of keys no longer on
screen are dropped.
"""

from __future__ import annotations

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    async def recompose(self) -> None:
        await super().recompose()
        # Textual keeps data-bind watchers in this attribute (set by name, so not mangled).
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, callback) for node, callback in watchers if node.is_attached]
