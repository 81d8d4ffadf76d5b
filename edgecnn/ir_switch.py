"""One LLVM switch over unrolled register-tile shapes, for the hand-written IR tiles (the trainer's
float tile, the int8 runtime's VNNI and int16-pair tiles).

A tile's rows and vectors are run-time values, but each shape must be unrolled at compile time
(its accumulators live in registers). So the codegen emits every allowed shape once and jumps
to the one asked for through `switch rows*16 + tiles`; a shape not emitted does nothing.
"""

from llvmlite import ir


def switch_on_shape(builder, intp, rows_v, tiles_v, shapes, emit, name):
    """emit(rows, tiles) in its own block for each (rows, tiles) in shapes (tiles < 16); the builder
    ends positioned after the switch."""
    key = builder.add(builder.mul(rows_v, ir.Constant(intp, 16)), tiles_v)
    done = builder.append_basic_block(f"{name}_done")
    switch = builder.switch(key, done)
    for n_rows, n_tiles in shapes:
        block = builder.append_basic_block(f"{name}_{n_rows}x{n_tiles}")
        switch.add_case(ir.Constant(intp, 16 * n_rows + n_tiles), block)
        builder.position_at_end(block)
        emit(n_rows, n_tiles)
        builder.branch(done)
    builder.position_at_end(done)
