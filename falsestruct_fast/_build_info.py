source_hash = "4e38337dbd2307da2b039cc3bbf8d56c019eb5cd6e887fc7dbd5dadb0279d32d"
cuda_built = True
native_arch = True
