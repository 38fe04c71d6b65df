"""The rule grammar: natural-language and structured rules -> condition IR."""
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.ir import Combined, Compare, Condition, Cross, Operand, Series, combine, num
from services.codegen.grammar.nl import parse_rule
from services.codegen.grammar.structured import parse_condition

__all__ = [
    "RuleError", "Combined", "Compare", "Condition", "Cross", "Operand", "Series", "combine", "num",
    "parse_rule", "parse_condition",
]
