"""b2v_rnn: one motion-blurred photo in, a short sharp video out.

Jin, Meishvili & Favaro, "Learning to Extract a Video Sequence from a Single
Motion-Blurred Image" (CVPR 2018), with one weight-shared recurrent generator for any
odd number of frames and fused C++/CUDA kernels (see ``b2v_rnn.ops``).
"""

__version__ = "0.1.0"
