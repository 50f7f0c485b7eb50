source_hash = "d228cf260e2e2c1953c0928bb5fa8f4fbe63c5d87978e7bbefd8536010bcf5e0"
cuda_built = True
native_arch = True
