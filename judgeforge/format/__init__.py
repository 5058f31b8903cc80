"""Judge formats: modes, prompts, rendered-prompt parsing, rubrics and rubric files, output
parsing, example records.  Imports only the core (errors)."""
