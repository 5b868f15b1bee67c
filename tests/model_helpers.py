"""Helpers shared by the model, predict and evaluate tests."""

import torch


def randomize_output_layers(model):
    """Gives the zero-initialised last convs of φm and G random weights, as training soon does.

    Untrained, both networks return their residual input exactly (φm(y) = y, G = near), so every
    frame would equal y: tests of gradients and of frame-by-frame outputs need a network whose
    frames differ.
    """
    for refinement in (model.middle.refinement, model.generator.refinement):
        torch.nn.init.normal_(refinement.output_layer.weight, std=0.1)
        torch.nn.init.normal_(refinement.output_layer.bias, std=0.1)
    return model
