//! ThingsBoard's JSON shapes for our entities.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thingsafe_core::{Customer, Device, Page, PageRequest, Tenant, User};
use uuid::Uuid;

use crate::error::ApiError;

/// ThingsBoard's id of "no customer" (and of the system tenant).
pub const NULL_UUID: Uuid = Uuid::from_u128(0x13814000_1dd2_11b2_8080_808080808080);

pub fn entity_id(entity_type: &str, id: Uuid) -> Value {
    json!({ "entityType": entity_type, "id": id })
}

/// `{"entityType": ..., "id": ...}` as clients send it; only `id` matters to us.
#[derive(Deserialize, Debug, Clone, Copy)]
pub struct EntityIdIn {
    pub id: Uuid,
}

pub fn device(d: &Device) -> Value {
    json!({
        "id": entity_id("DEVICE", d.id.as_uuid()),
        "createdTime": d.created_ms,
        "tenantId": entity_id("TENANT", d.tenant_id.as_uuid()),
        "customerId": entity_id("CUSTOMER", d.customer_id.map_or(NULL_UUID, |c| c.as_uuid())),
        "ownerId": match d.customer_id {
            Some(c) => entity_id("CUSTOMER", c.as_uuid()),
            None => entity_id("TENANT", d.tenant_id.as_uuid()),
        },
        "name": d.name,
        "type": d.device_type,
        "label": d.label,
        "deviceProfileId": entity_id("DEVICE_PROFILE", d.profile_id().as_uuid()),
        "additionalInfo": device_additional_info(d),
    })
}

/// ThingsBoard's `additionalInfo` of a device: `{"gateway": true}` for a gateway, the
/// gateway a sub-device was created by (`lastConnectedGateway`), else nothing.
fn device_additional_info(d: &Device) -> Value {
    match (d.gateway, d.gateway_id) {
        (true, _) => json!({ "gateway": true }),
        (false, Some(gateway)) => json!({ "lastConnectedGateway": gateway.as_uuid() }),
        (false, None) => Value::Null,
    }
}

/// ThingsBoard's `DeviceProfile` JSON, the provisioning subset.
pub fn device_profile(p: &thingsafe_core::model::DeviceProfile) -> Value {
    let mut configuration = json!({
        "type": p.provision_type.as_str(),
        "provisionDeviceKey": p.provision_device_key,
        "provisionDeviceSecret": p.provision_device_secret,
    });
    if let Some(x509) = &p.x509 {
        configuration["certificateRegExPattern"] = json!(x509.certificate_pattern);
        configuration["allowCreateNewDevicesByX509Certificate"] = json!(x509.allow_create);
    }
    json!({
        "id": entity_id("DEVICE_PROFILE", p.id.as_uuid()),
        "createdTime": p.created_ms,
        "tenantId": entity_id("TENANT", p.tenant_id.as_uuid()),
        "name": p.name,
        "type": "DEFAULT",
        "transportType": "DEFAULT",
        "default": p.is_tenant_default(),
        "provisionType": p.provision_type.as_str(),
        "provisionDeviceKey": p.provision_device_key,
        "profileData": {
            "provisionConfiguration": configuration,
        },
    })
}

pub fn customer(c: &Customer) -> Value {
    json!({
        "id": entity_id("CUSTOMER", c.id.as_uuid()),
        "createdTime": c.created_ms,
        "tenantId": entity_id("TENANT", c.tenant_id.as_uuid()),
        "title": c.title,
        "name": c.title,
        "additionalInfo": null,
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "id": entity_id("USER", u.id.as_uuid()),
        "createdTime": u.created_ms,
        "tenantId": entity_id("TENANT", u.tenant_id.map_or(NULL_UUID, |t| t.as_uuid())),
        "customerId": entity_id("CUSTOMER", u.customer_id.map_or(NULL_UUID, |c| c.as_uuid())),
        "email": u.email,
        "name": u.email,
        "authority": u.authority.as_str(),
        "firstName": u.first_name,
        "lastName": u.last_name,
        "additionalInfo": { "userActivated": u.activated },
    })
}

pub fn tenant(t: &Tenant) -> Value {
    json!({
        "id": entity_id("TENANT", t.id.as_uuid()),
        "createdTime": t.created_ms,
        "title": t.title,
        "name": t.title,
    })
}

pub fn page<T>(page: Page<T>, render: impl Fn(&T) -> Value) -> Value {
    json!({
        "data": page.data.iter().map(render).collect::<Vec<_>>(),
        "totalPages": page.total_pages,
        "totalElements": page.total_elements,
        "hasNext": page.has_next,
    })
}

/// ThingsBoard's paging parameters; `pageSize` and `page` are required there, and here.
/// (Not flattened into other parameter structs: serde's flatten breaks numbers in query
/// strings.)
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PageParams {
    page_size: Option<usize>,
    page: Option<usize>,
    text_search: Option<String>,
    /// ThingsBoard's entity type filter (`type=thermostat` on device listings).
    #[serde(rename = "type")]
    pub entity_type: Option<String>,
}

impl PageParams {
    pub fn of(page_size: Option<usize>, page: Option<usize>, text_search: Option<String>) -> Self {
        PageParams {
            page_size,
            page,
            text_search,
            entity_type: None,
        }
    }

    pub fn request(self) -> Result<PageRequest, ApiError> {
        let page_size = self.page_size.ok_or_else(|| {
            ApiError::bad_request("Required request parameter 'pageSize' is not present")
        })?;
        let page = self.page.ok_or_else(|| {
            ApiError::bad_request("Required request parameter 'page' is not present")
        })?;
        if page_size == 0 || page_size > PageRequest::MAX_PAGE_SIZE {
            return Err(ApiError::bad_request(format!(
                "pageSize must be between 1 and {}",
                PageRequest::MAX_PAGE_SIZE
            )));
        }
        Ok(PageRequest {
            page_size,
            page,
            text_search: self.text_search.filter(|s| !s.is_empty()),
        })
    }
}

/// `{"token", "refreshToken"}` as `POST /api/auth/login` answers.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct JwtPair {
    pub token: String,
    pub refresh_token: String,
}
