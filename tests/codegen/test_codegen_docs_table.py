"""The phrasings table of docs/strategy-schema.md is the grammar's own examples with the formulas it gives them."""
from __future__ import annotations

from services.codegen.grammar.examples import BEGIN, END, EXAMPLES, docs_table
from services.common.config import project_root


def test_docs_table_is_generated_from_the_grammar():
    text = (project_root() / "docs" / "strategy-schema.md").read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == docs_table(), "regenerate with: python -m services.codegen.grammar.examples"
    assert len(table.splitlines()) == len(EXAMPLES) + 2
