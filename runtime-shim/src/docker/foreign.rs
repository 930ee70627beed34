//! Containers roster did not start, as registrator mode sees them: which run, and what each one asks for.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::query_parameters::ListContainersOptions;

use super::{DockerDriver, runtime_error};
use crate::driver::LABEL_NODE;
use crate::error::Result;
use crate::registrator::ContainerInfo;

impl DockerDriver {
    /// IDs of the running containers that carry no roster label (roster's own tasks are registered by their jobs).
    pub async fn running_foreign(&self) -> Result<Vec<String>> {
        let options = ListContainersOptions { all: false, limit: None, size: false, filters: None };
        let containers = self.docker.list_containers(Some(options)).await.map_err(|err| runtime_error("list", err))?;
        let foreign = containers.into_iter().filter(|c| !c.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_NODE)));
        Ok(foreign.filter_map(|c| c.id).collect())
    }

    /// What registrator's grammar needs from one container: name, image, labels, env, ports and address.
    pub async fn container_info(&self, id: &str) -> Result<ContainerInfo> {
        let inspect = self.docker.inspect_container(id, None).await.map_err(|err| runtime_error("inspect", err))?;
        let config = inspect.config.unwrap_or_default();
        let settings = inspect.network_settings.unwrap_or_default();
        let mut ports: Vec<(u16, String, Option<u16>)> = settings
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, bindings)| {
                let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
                let host = bindings
                    .unwrap_or_default()
                    .iter()
                    .find_map(|b| b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()));
                Some((port.parse().ok()?, proto.to_owned(), host))
            })
            .collect();
        ports.sort();
        let ip = settings
            .networks
            .unwrap_or_default()
            .into_values()
            .find_map(|network| network.ip_address.filter(|ip| !ip.is_empty()))
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        Ok(ContainerInfo {
            id: id.to_owned(),
            name: inspect.name.unwrap_or_default().trim_start_matches('/').to_owned(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_else(HashMap::new).into_iter().collect(),
            env: config.env.unwrap_or_default(),
            ports,
            ip,
        })
    }
}
