"""Learning aids beside the study guide: its worked examples replayed through the project's real
code (lessons), a glossary of every figure the app shows, and a doctor for Part 7's pathologies."""
