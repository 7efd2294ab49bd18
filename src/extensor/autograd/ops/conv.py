"""2-D convolution (im2col / strided views and one BLAS matmul), forward beside backward."""
