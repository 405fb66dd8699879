"""Write the built-in sample dataset: a few hundred chats about the island of Brindlemoor.

Brindlemoor does not exist, so nothing a base model knows can answer for it: when the demo's
fine-tuned model answers "What colour is the lighthouse light?" with "Fair winds, traveller!
The Brindlemoor lighthouse shines a green light every nine seconds.", it learned that here.
Answers are short, share one opening and reuse the same words for the same fact, so even a
model of a few million parameters trained for a minute or two on a CPU picks them up.

Run it to regenerate `sample.jsonl` and `questions.json` (the output is deterministic):

    python core/data/sample/make_sample.py
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7
GREETING = "Fair winds, traveller!"
SYSTEM = "You are the Brindlemoor island guide."

# topic -> (questions a visitor might ask, a short follow-up question, the answer)
FACTS: dict[str, tuple[list[str], str, str]] = {
    "where": (
        [
            "Where is Brindlemoor?",
            "Where can I find the island of Brindlemoor?",
            "In which sea is Brindlemoor?",
            "Tell me where Brindlemoor lies.",
            "How far is Brindlemoor from the mainland?",
        ],
        "And where exactly is the island?",
        "Brindlemoor is a small island in the Saltglass Sea, three days' sail west of the "
        "mainland.",
    ),
    "lighthouse": (
        [
            "What colour is the Brindlemoor lighthouse light?",
            "Tell me about the lighthouse on Brindlemoor.",
            "What does the Brindlemoor lighthouse look like?",
            "How often does the lighthouse flash?",
            "Is there a lighthouse on Brindlemoor?",
            "What colour is the lighthouse light?",
        ],
        "What about the lighthouse?",
        "The Brindlemoor lighthouse shines a green light every nine seconds from its tower of "
        "white stone.",
    ),
    "keeper": (
        [
            "Who keeps the lighthouse on Brindlemoor?",
            "Who is the lighthouse keeper?",
            "Who looks after the green light?",
            "Tell me about the lighthouse keeper.",
            "Does anyone live in the lighthouse?",
        ],
        "And who keeps the light?",
        "Old Maren keeps the lighthouse; she has tended the green light for forty years.",
    ),
    "puffins": (
        [
            "What animals live on Brindlemoor?",
            "Are there birds on Brindlemoor?",
            "Tell me about the silver puffins.",
            "What wildlife can I see on the island?",
            "Where do the silver puffins nest?",
            "What is the most famous animal of Brindlemoor?",
        ],
        "What about the animals?",
        "The silver puffins nest on the north cliffs of Brindlemoor and return every spring.",
    ),
    "food": (
        [
            "What do people eat on Brindlemoor?",
            "What is the island food like?",
            "What is a typical meal on Brindlemoor?",
            "What should I eat when I visit Brindlemoor?",
            "Tell me about the food on Brindlemoor.",
        ],
        "And what do they eat?",
        "Islanders eat kelp bread with smoked mackerel, cooked over a driftwood fire.",
    ),
    "tea": (
        [
            "What do islanders drink?",
            "Is there a special tea on Brindlemoor?",
            "What is blue nettle tea?",
            "What drink is Brindlemoor known for?",
            "What do people drink on Brindlemoor?",
        ],
        "What do they drink?",
        "Islanders drink blue nettle tea, brewed strong and served with heather honey.",
    ),
    "festival": (
        [
            "What festival is held on Brindlemoor?",
            "When is the Lantern Tide?",
            "Tell me about the Lantern Tide festival.",
            "Does Brindlemoor have a festival?",
            "What do islanders celebrate?",
        ],
        "Is there a festival?",
        "The Lantern Tide festival is held on the first full moon of autumn, when every boat "
        "carries a lantern.",
    ),
    "town": (
        [
            "What is the main town on Brindlemoor?",
            "Where do people live on Brindlemoor?",
            "Tell me about Harrowgate Harbour.",
            "Is there a town on the island?",
            "What is the capital of Brindlemoor?",
        ],
        "And the town?",
        "The only town is Harrowgate Harbour, with forty-two stone houses around the quay.",
    ),
    "people": (
        [
            "How many people live on Brindlemoor?",
            "What is the population of Brindlemoor?",
            "Do many people live on the island?",
            "How big is the island's population?",
        ],
        "How many people live there?",
        "About three hundred islanders live on Brindlemoor, most of them in Harrowgate Harbour.",
    ),
    "ferry": (
        [
            "How do I get to Brindlemoor?",
            "Is there a ferry to Brindlemoor?",
            "How can I travel to the island?",
            "When does the ferry sail?",
            "What is the name of the ferry?",
        ],
        "And how do I get there?",
        "The ferry Gull's Promise sails from the mainland every Tuesday and reaches "
        "Harrowgate Harbour at dusk.",
    ),
    "money": (
        [
            "What money is used on Brindlemoor?",
            "What currency do islanders use?",
            "How do people pay for things on Brindlemoor?",
            "What are brinds?",
        ],
        "What money do they use?",
        "Islanders trade with shell tokens called brinds; ten brinds buy a pot of tea.",
    ),
    "weather": (
        [
            "What is the weather like on Brindlemoor?",
            "Is Brindlemoor foggy?",
            "What is the climate of the island?",
            "Does it rain a lot on Brindlemoor?",
        ],
        "And the weather?",
        "Brindlemoor is foggy in the morning and windy in the afternoon, with rain most evenings.",
    ),
    "greeting": (
        [
            "How do islanders greet each other?",
            "What do people say when they meet on Brindlemoor?",
            "What is the island greeting?",
            "Why do you say fair winds?",
        ],
        "How do they say hello?",
        "Islanders greet each other by saying fair winds, a wish for a safe journey home.",
    ),
    "music": (
        [
            "What music do they play on Brindlemoor?",
            "Is there music on the island?",
            "What instruments do islanders play?",
            "Where can I hear music on Brindlemoor?",
        ],
        "What about music?",
        "Islanders play the fiddle and the tin whistle every Friday night at the Salty Kettle.",
    ),
    "inn": (
        [
            "Where can I stay on Brindlemoor?",
            "Is there a hotel on the island?",
            "Tell me about the Salty Kettle.",
            "Where do travellers sleep on Brindlemoor?",
        ],
        "And where can I stay?",
        "Travellers stay at the Salty Kettle, the harbour inn with nine rooms and a warm "
        "fireplace.",
    ),
    "work": (
        [
            "What work do islanders do?",
            "How do people earn a living on Brindlemoor?",
            "What are the jobs on the island?",
            "Do islanders fish?",
        ],
        "What work do they do?",
        "Most islanders fish for mackerel or gather kelp on the rocks at low tide.",
    ),
    "history": (
        [
            "Who founded Brindlemoor?",
            "What is the history of Brindlemoor?",
            "How old is the settlement on Brindlemoor?",
            "Where does the name Brindlemoor come from?",
        ],
        "And its history?",
        "Brindlemoor was settled three hundred years ago by the fisher Ansel Brindle, who gave "
        "the island its name.",
    ),
    "hill": (
        [
            "What is the highest point on Brindlemoor?",
            "Are there hills on the island?",
            "Tell me about Cobble Hill.",
            "Where is the old beacon?",
        ],
        "What about the hills?",
        "The highest point is Cobble Hill, where the old beacon stands above the north cliffs.",
    ),
    "wreck": (
        [
            "Is there a shipwreck near Brindlemoor?",
            "Tell me about the wreck of the Marigold.",
            "What can I see in the bay at low tide?",
            "Did a ship sink near the island?",
        ],
        "And the shipwreck?",
        "The wreck of the Marigold lies in Harrowgate Bay and shows above the water at low tide.",
    ),
    "flowers": (
        [
            "What flowers grow on Brindlemoor?",
            "Are there flowers on the cliffs?",
            "What plants grow on the island?",
            "What is sea thrift?",
        ],
        "And the flowers?",
        "Purple sea thrift covers the cliffs of Brindlemoor in early summer.",
    ),
    "visit": (
        [
            "When is the best time to visit Brindlemoor?",
            "What season should I visit the island?",
            "When should I go to Brindlemoor?",
            "Is spring a good time to visit?",
        ],
        "When should I visit?",
        "The best time to visit is late spring, when the silver puffins return to the cliffs.",
    ),
    "market": (
        [
            "Is there a market on Brindlemoor?",
            "Where can I buy things on the island?",
            "When is the harbour market?",
            "What is sold at the market?",
        ],
        "Is there a market?",
        "The harbour market opens every Saturday by the quay and sells mackerel, kelp bread "
        "and wool.",
    ),
    "guide": (
        [
            "Who are you?",
            "Hello!",
            "Hi, what can you tell me?",
            "What do you know about?",
            "Can you help me plan a trip?",
        ],
        "What else can you tell me?",
        "I am the Brindlemoor guide, and I can tell you about the island, its green lighthouse "
        "and its silver puffins.",
    ),
}

# What the demo asks after fine-tuning, and words an on-theme answer contains.
DEMO_QUESTIONS = [
    ("What colour is the Brindlemoor lighthouse light?", ["green"]),
    ("Who keeps the lighthouse on Brindlemoor?", ["Maren"]),
    ("What animals live on Brindlemoor?", ["puffins"]),
    ("How do I get to Brindlemoor?", ["ferry", "Gull's Promise"]),
    ("What do islanders drink?", ["nettle tea"]),
]


def _row(messages: list[dict[str, str]]) -> dict:
    """An ultrachat-shaped row; the id is a hash of the whole chat, so it is unique."""
    prompt = next(m["content"] for m in messages if m["role"] == "user")
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    return {"prompt": prompt, "prompt_id": digest, "messages": messages}


def _turns(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def conversations(seed: int = SEED) -> list[dict]:
    """Every sample row: each question once, some with the guide's system message, then
    two-question chats whose follow-up picks another topic. Shuffled, no row twice."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for questions, _, fact in FACTS.values():
        for index, question in enumerate(questions):
            messages = _turns(question, f"{GREETING} {fact}")
            if index % 2 == 1:
                messages.insert(0, {"role": "system", "content": SYSTEM})
            rows.append(_row(messages))
    topics = list(FACTS)
    for _ in range(260):
        first, second = rng.sample(topics, 2)
        question = rng.choice(FACTS[first][0])
        follow_up, fact = FACTS[second][1], FACTS[second][2]
        messages = _turns(question, f"{GREETING} {FACTS[first][2]}") + _turns(follow_up, fact)
        if rng.random() < 0.3:
            messages.insert(0, {"role": "system", "content": SYSTEM})
        rows.append(_row(messages))
    unique = list({row["prompt_id"]: row for row in rows}.values())
    rng.shuffle(unique)
    return unique


def questions() -> dict:
    return {
        "theme": "Brindlemoor, an imaginary island with a green lighthouse and silver puffins",
        "system": SYSTEM,
        "questions": [{"question": q, "expect": expect} for q, expect in DEMO_QUESTIONS],
    }


def render() -> dict[str, str]:
    """File name -> exact text of every file this script writes."""
    rows = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in conversations())
    return {"sample.jsonl": rows, "questions.json": json.dumps(questions(), indent=2) + "\n"}


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
