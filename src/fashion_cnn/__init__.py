"""fashion_cnn
"""

__version__ = "0.1"
