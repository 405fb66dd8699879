"""Chat datasets: prepare the train/test files, validate rows, preview a file of any size.

- `rules`: what makes a row trainable (shared by validate, prepare and preview)
- `jsonl`: forgiving line reading (CRLF, blank lines, bad bytes, no final newline)
- `sources`, `prepare`: hub / local / sample sources split into the project's files
- `validate`: the streaming validator behind `phiops data validate`
- `index`: `DatasetIndex`, the preview engine the CLI and the TUI's dataset tab sit on
- `sample/`: the built-in Brindlemoor sample and the script that writes it
"""
