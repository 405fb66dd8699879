"""The command palette's provider: every action of the app, found by fuzzy search.

The list itself comes from `PhiopsApp.palette_commands()`, so the palette, the help and
the tests read one definition; an empty query lists them all (discovery).
"""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Hits, Provider


class PhiopsCommands(Provider):
    """Prepare data, submit and cancel jobs, deploy, shift traffic, chat, switch backend…"""

    def _commands(self):
        commands = getattr(self.app, "palette_commands", None)
        return commands() if callable(commands) else []

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = max(matcher.match(title), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
