source_hash = "98442f2fb8bb4cf05399912a433fd5773b6d12fb19cc247659650b8e5517d7b5"
cuda_built = True
native_arch = True
