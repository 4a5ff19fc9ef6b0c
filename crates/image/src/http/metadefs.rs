//! `/v2/metadefs/...` and `/v2/schemas/metadefs/...`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{json_status, no_content, AppState};
use crate::service::metadefs::namespace_view;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/v2/metadefs/resource_types", get(list_resource_types))
        .route(
            "/v2/metadefs/namespaces",
            get(list_namespaces).post(create_namespace),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}",
            get(show_namespace)
                .put(update_namespace)
                .delete(delete_namespace),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects",
            get(list_objects).post(create_object),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects/{name}",
            get(show_object).put(update_object).delete(delete_object),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties",
            get(list_properties).post(create_property),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties/{name}",
            get(show_property)
                .put(update_property)
                .delete(delete_property),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/tags",
            get(list_tags).post(create_tags).delete(delete_tags),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/tags/{name}",
            get(show_tag)
                .put(update_tag)
                .delete(delete_tag)
                .merge(post(create_tag)),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types",
            get(list_associations).post(create_association),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types/{name}",
            axum::routing::delete(delete_association),
        );
    for (path, name) in [
        ("namespace", "namespace"),
        ("namespaces", "namespaces"),
        ("resource_type", "resource_type_association"),
        ("resource_types", "resource_type_associations"),
        ("object", "object"),
        ("objects", "objects"),
        ("property", "property"),
        ("properties", "properties"),
        ("tag", "tag"),
        ("tags", "tags"),
    ] {
        router = router.route(
            &format!("/v2/schemas/metadefs/{path}"),
            get(move |_caller: Caller| async move { Json(schema(name)) }),
        );
    }
    router
}

/// The metadef schemas, reduced to what clients read (their names and main properties).
fn schema(name: &str) -> Value {
    let item = |singular: &str, properties: Value| json!({"name": singular, "properties": properties, "additionalProperties": false});
    let collection = |plural: &str, singular_schema: Value| {
        json!({
            "name": plural,
            "properties": {
                plural: {"type": "array", "items": singular_schema},
                "first": {"type": "string"}, "next": {"type": "string"}, "schema": {"type": "string"},
            },
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}],
        })
    };
    let namespace = item(
        "namespace",
        json!({
            "namespace": {"type": "string", "maxLength": 80},
            "display_name": {"type": "string", "maxLength": 80},
            "description": {"type": "string", "maxLength": 500},
            "visibility": {"type": "string", "enum": ["public", "private"]},
            "protected": {"type": "boolean"},
            "owner": {"type": "string", "maxLength": 255},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "schema": {"type": "string", "readOnly": true},
            "self": {"type": "string", "readOnly": true},
        }),
    );
    let rta = item(
        "resource_type_association",
        json!({
            "name": {"type": "string", "maxLength": 80},
            "prefix": {"type": "string", "maxLength": 80},
            "properties_target": {"type": "string", "maxLength": 80},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        }),
    );
    let object = item(
        "object",
        json!({
            "name": {"type": "string", "maxLength": 80},
            "description": {"type": "string"},
            "required": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object"},
            "schema": {"type": "string", "readOnly": true},
            "self": {"type": "string", "readOnly": true},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        }),
    );
    let property = item(
        "property",
        json!({
            "name": {"type": "string", "maxLength": 80},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", null]},
            "enum": {"type": "array"},
            "default": {},
            "readonly": {"type": "boolean"},
        }),
    );
    let tag = item(
        "tag",
        json!({
            "name": {"type": "string", "maxLength": 255},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        }),
    );
    match name {
        "namespace" => namespace,
        "namespaces" => collection("namespaces", namespace),
        "resource_type_association" => rta,
        "resource_type_associations" => collection("resource_type_associations", rta),
        "object" => object,
        "objects" => collection("objects", object),
        "property" => property,
        "properties" => json!({
            "name": "properties",
            "properties": {"properties": {"type": "object", "additionalProperties": property}},
        }),
        "tag" => tag,
        _ => collection("tags", tag),
    }
}

type Params = Query<Vec<(String, String)>>;

async fn list_resource_types(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"resource_types": s.list_resource_types(&caller).await?}),
    ))
}

async fn list_namespaces(
    State(s): State<AppState>,
    caller: Caller,
    Query(params): Params,
) -> Result<Json<Value>, Error> {
    let list = s.list_namespaces(&caller, &params).await?;
    Ok(Json(json!({
        "namespaces": list.iter().map(|ns| namespace_view(ns, false)).collect::<Vec<_>>(),
        "first": "/v2/metadefs/namespaces",
        "schema": "/v2/schemas/metadefs/namespaces",
    })))
}

async fn create_namespace(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let ns = s.create_namespace(&caller, body).await?;
    Ok(json_status(StatusCode::CREATED, namespace_view(&ns, true)))
}

async fn show_namespace(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(namespace_view(
        &s.get_namespace(&caller, &ns).await?,
        true,
    )))
}

async fn update_namespace(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(namespace_view(
        &s.update_namespace(&caller, &ns, body).await?,
        false,
    )))
}

async fn delete_namespace(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Response, Error> {
    s.delete_namespace(&caller, &ns).await?;
    Ok(no_content())
}

async fn list_objects(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(json!({
        "objects": s.list_md_objects(&caller, &ns).await?,
        "schema": "v2/schemas/metadefs/objects",
    })))
}

async fn create_object(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    Ok(json_status(
        StatusCode::CREATED,
        s.create_md_object(&caller, &ns, body).await?,
    ))
}

async fn show_object(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.get_md_object(&caller, &ns, &name).await?))
}

async fn update_object(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.update_md_object(&caller, &ns, &name, body).await?))
}

async fn delete_object(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_md_object(&caller, &ns, &name).await?;
    Ok(no_content())
}

async fn list_properties(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"properties": s.list_md_properties(&caller, &ns).await?}),
    ))
}

async fn create_property(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    Ok(json_status(
        StatusCode::CREATED,
        s.create_md_property(&caller, &ns, body).await?,
    ))
}

async fn show_property(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.get_md_property(&caller, &ns, &name).await?))
}

async fn update_property(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.update_md_property(&caller, &ns, &name, body).await?))
}

async fn delete_property(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_md_property(&caller, &ns, &name).await?;
    Ok(no_content())
}

async fn list_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(json!({"tags": s.list_md_tags(&caller, &ns).await?})))
}

async fn create_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let tags = s.create_md_tags(&caller, &ns, body).await?;
    Ok(json_status(StatusCode::CREATED, json!({"tags": tags})))
}

async fn delete_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Response, Error> {
    s.delete_md_tag(&caller, &ns, None).await?;
    Ok(no_content())
}

async fn create_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    Ok(json_status(
        StatusCode::CREATED,
        s.create_md_tag(&caller, &ns, &name).await?,
    ))
}

async fn show_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.get_md_tag(&caller, &ns, &name).await?))
}

async fn update_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(s.update_md_tag(&caller, &ns, &name, body).await?))
}

async fn delete_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_md_tag(&caller, &ns, Some(&name)).await?;
    Ok(no_content())
}

async fn list_associations(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"resource_type_associations": s.list_rt_associations(&caller, &ns).await?}),
    ))
}

async fn create_association(
    State(s): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    Ok(json_status(
        StatusCode::CREATED,
        s.create_rt_association(&caller, &ns, body).await?,
    ))
}

async fn delete_association(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_rt_association(&caller, &ns, &name).await?;
    Ok(no_content())
}
