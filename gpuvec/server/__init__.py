"""``gpuvec serve``: a gRPC server implementing Milvus's ``MilvusService`` over the embedded
runtime, so that an unmodified ``pymilvus.MilvusClient("http://host:19530")`` works."""
