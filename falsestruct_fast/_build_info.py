source_hash = "ac770008b2d6c36a965725a0587dd810fe09c61208ea664af15776a519722ee4"
cuda_built = True
native_arch = True
