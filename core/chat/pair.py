"""One question to two targets, answered side by side: base against fine-tuned, blue
against green.

Each side is a `ChatService` bound to one target (`core.eval.targets`: an endpoint's
deployment reached by its `azureml-model-deployment` header, a registered version or the
base model on a temporary scoring server) with a session of its own, so each side keeps its
conversation, stored as every chat is (a failure is an error turn; nothing is lost). Both
answers stream at once; `ask` yields `(side, event)` as the pieces arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.chat.endpoint import EndpointTarget
from core.chat.service import ChatEvent, ChatRoute, ChatService, GenerationParams
from core.chat.sessions import SessionStore
from core.errors import PhiopsError

SIDES = ("A", "B")


@dataclass
class Side:
    label: str  # what answers: "phi3-endpoint:green (phi3:2)", "base model (tiny-phi3)"
    service: ChatService
    session_id: str
    resolved: Any = None  # core.eval.targets.Resolved (its temporary server, if any)


class ChatPair:
    """Two targets open for questions; `close()` stops any temporary server."""

    def __init__(self, config: Any, backend: Any, store: SessionStore | None = None) -> None:
        self.config = config
        self.backend = backend
        self.store = store or SessionStore()
        self.sides: list[Side] = []
        self._stack = contextlib.ExitStack()

    def open(self, a: str, b: str, say: Any = None) -> list[Side]:
        """Resolve both targets (`base`, `model:NAME[:VERSION]`, `ENDPOINT[:DEPLOYMENT]`),
        starting temporary servers where needed (blocking: call it from a thread)."""
        from core.eval.targets import TargetSpec, describe, started

        if self.sides:
            raise PhiopsError("the two targets are already open; close them first")
        try:
            for side, text in zip(SIDES, (a, b), strict=True):
                found = describe(self.config, self.backend, TargetSpec.parse(text.strip()))
                found = self._stack.enter_context(started(found, say))
                target = EndpointTarget(
                    found.target.url, found.target.key, deployment=found.target.deployment
                )
                service = ChatService(self.config, self.store, backend=self.backend, target=target)
                session = self.store.create(title=f"{side}: {found.label}", route="direct")
                self.sides.append(Side(found.label, service, session.id, found))
        except BaseException:
            self.close()
            raise
        return self.sides

    def close(self) -> None:
        self.sides = []
        self._stack.close()
        self._stack = contextlib.ExitStack()

    async def ask(
        self,
        question: str,
        *,
        route: ChatRoute = ChatRoute.DIRECT,
        params: GenerationParams | None = None,
    ) -> AsyncIterator[tuple[int, ChatEvent]]:
        """Both answers as they arrive: (0 or 1, AnswerDelta / AnswerDone / AnswerFailed)."""
        if len(self.sides) != 2:
            raise PhiopsError("open two targets first")
        if route == ChatRoute.SERVED:
            route = ChatRoute.FLOW  # a served flow is bound to one endpoint
        queue: asyncio.Queue[tuple[int, ChatEvent] | None] = asyncio.Queue()

        async def one(index: int, side: Side) -> None:
            try:
                async for event in side.service.ask(
                    side.session_id, question, route=route, params=params
                ):
                    await queue.put((index, event))
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(one(i, side)) for i, side in enumerate(self.sides)]
        try:
            ended = 0
            while ended < len(tasks):
                item = await queue.get()
                if item is None:
                    ended += 1
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for side in self.sides:
                await side.service.aclose()
