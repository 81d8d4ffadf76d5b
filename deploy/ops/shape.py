"""SHAPE: an int32 vector of the input's dimensions. Folded away by the reader (the batch kept symbolic)."""

from edgecnn.deploy.ops.base import ANY, OpDef, Operand

OP = OpDef(
    name="SHAPE",
    operands=(Operand("input", ANY),),
    options_table="ShapeOptions",
    decode=lambda o: {} if o is None else {"out_type": int(o.OutType())},
    options_required=False,
    fold=None,  # the reader evaluates SHAPE itself: it alone knows which dimension is the batch
)
