source_hash = "55f25fe80c3dbae61696ca9b6557f1e02830d752470accea7f44f3b017cb70ab"
cuda_built = True
native_arch = True
