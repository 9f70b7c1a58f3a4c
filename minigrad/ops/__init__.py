"""The differentiable ops, one `Function` each, grouped by kind. Users call them
through `Tensor` methods and `minigrad.nn.functional`."""
