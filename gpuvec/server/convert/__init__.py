"""Pure protobuf ⇄ gpuvec translations of the gRPC endpoint (no engine calls): schemas
(:mod:`.schema`), entity columns (:mod:`.fields`), search (:mod:`.search`), query and
delete (:mod:`.query`). Requests become the arguments of the embedded
:class:`gpuvec.MilvusClient`; its results become the messages pymilvus parses."""

from gpuvec.server.convert.fields import (
    COUNT_FIELD,
    field_data_from_rows,
    fields_to_proto,
    is_count,
    rows_from_field_data,
    user_output_fields,
)
from gpuvec.server.convert.query import (
    DeleteArgs,
    QueryArgs,
    parse_delete_request,
    parse_query_request,
    primary_keys_of,
    query_result_to_proto,
)
from gpuvec.server.convert.schema import (
    default_from_proto,
    field_from_proto,
    schema_from_proto,
    schema_to_proto,
)
from gpuvec.server.convert.search import (
    SearchArgs,
    check_param_numbers,
    consistency_of,
    parse_bool,
    parse_int,
    parse_search_request,
    search_result_to_proto,
    template_values,
)

__all__ = [
    "COUNT_FIELD",
    "DeleteArgs",
    "QueryArgs",
    "SearchArgs",
    "check_param_numbers",
    "consistency_of",
    "default_from_proto",
    "field_data_from_rows",
    "field_from_proto",
    "fields_to_proto",
    "is_count",
    "parse_bool",
    "parse_delete_request",
    "parse_int",
    "parse_query_request",
    "parse_search_request",
    "primary_keys_of",
    "query_result_to_proto",
    "rows_from_field_data",
    "schema_from_proto",
    "schema_to_proto",
    "search_result_to_proto",
    "template_values",
    "user_output_fields",
]
