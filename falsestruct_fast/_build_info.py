source_hash = "7d9c2c5add1db2fbb89b1157639da0526e408c2c8d4f63f0587550d719411b50"
cuda_built = True
native_arch = True
