"""edgelm.kernels: compute pieces that training, routing and the device runtime share.

Here: the sparse parameter difference of Lottery-Ticket Sparse Fine-Tuning (indices + values per
tensor, apply / remove), masked-mean pooling, and the router's expert selection, each with a torch
and a numpy implementation tested to agree, so a device computes exactly what training learned.
"""
