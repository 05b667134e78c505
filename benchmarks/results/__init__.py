"""The committed GPU runs (one folder per session: `YYYY-MM-DD-<card>/<benchmark>.json`), `NOTES.md` (why
each run was made, what it showed) and the README generated from them: `goals.py` (the goals as data),
`readme.py` (the generator), `run.py` (`python -m benchmarks report [--write | --check]`).
"""
