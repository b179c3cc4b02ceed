//! The Carbon modules' XML edits on the stand-in EI pack's real files, on local hosts (no lab): modules
//! `wso2_carbon_config` and `wso2_carbon_cluster` as the EI playbook uses them apply, a second run
//! changes nothing, the restart handler runs once, and `render` (from the same archive) shows exactly
//! the files apply leaves, secrets as placeholders.

mod common;
use common::wso2::{build_pack, repo};
use common::Project;

const SECRETS: [(&str, &str); 5] = [
    ("wso2_keystore_password", "Ks-pass-123456"),
    ("wso2_truststore_password", "Ts-pass-123456"),
    ("wso2_admin_password", "Admin-pass-123456"),
    ("wso2_db_password", "Db-pass-123456"),
    ("wso2_keystore_key_password", "Ks-pass-123456"),
];

const PLAYBOOK: &str = r#"
plays:
  - name: ei nodes
    hosts: all
    vars:
      wso2_conf_dir: "{{ root }}/wso2ei-6.6.0/conf"
      wso2_nodes_group: all
      wso2_service_name: wso2ei
      wso2_port_offset: 0
      wso2_admin_username: admin
      wso2_carbon_hostname: ei.example.internal
      wso2_http_proxy_port: 80
      wso2_https_proxy_port: 443
      wso2_wsdl_epr_prefixes:
        - { transport: http, prefix: "http://ei.example.internal:80" }
        - { transport: https, prefix: "https://ei.example.internal:443" }
      wso2_db_user: regadmin
      wso2_datasources:
        - { name: "REGISTRY_LOCAL_{{ inventory_hostname }}", jndi: jdbc/WSO2CarbonDB, database: "REGISTRY_LOCAL_{{ inventory_hostname }}", host: db.example.internal }
        - { name: REGISTRY_DB, jndi: jdbc/WSO2RegistryDB, database: REGISTRY_DB, host: db.example.internal, params: "?autoReconnect=true&relaxAutoCommit=true" }
        - { name: WSO2_USER_DB, jndi: jdbc/WSO2UMDB, database: WSO2_USER_DB, host: db.example.internal }
      wso2_user_store_datasource: jdbc/WSO2UMDB
      wso2_user_store_manager_datasource: jdbc/WSO2UMDB
      wso2_registry_dbconfig: sharedregistry
      wso2_registry_datasource: jdbc/WSO2RegistryDB
      wso2_registry_instance: instanceid
      wso2_registry_url: "https://localhost:9443/registry"
      wso2_registry_cache_id: "regadmin@jdbc:mariadb://db.example.internal:3306/REGISTRY_DB?autoReconnect=true&relaxAutoCommit=true"
      wso2_registry_mounts:
        - { path: /_system/config, target: /_system/eiconfig }
        - { path: /_system/governance, target: /_system/governance }
      wso2_cluster_domain: wso2.ei.domain
    tasks:
      - name: pack
        unarchive: { src: "{{ inventory_dir }}/files/wso2ei-6.6.0.zip", dest: "{{ root }}", creates: "{{ root }}/wso2ei-6.6.0/bin/integrator.sh" }
      - include: wso2_carbon_config
      - include: wso2_carbon_cluster
    handlers:
      - name: restart wso2am
        shell: { cmd: "echo restarted >> {{ root }}/restarts" }
"#;

fn project() -> Project {
    let p = Project::new();
    std::os::unix::fs::symlink(repo().join("modules"), p.path().join("modules")).unwrap();
    build_pack(&p.path().join("files"));
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let group = String::from_utf8(
        std::process::Command::new("id")
            .arg("-gn")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut vars = format!(
        "vars:\n  wso2_user: {}\n  wso2_group: {}\n",
        user.trim(),
        group.trim()
    );
    for (k, v) in SECRETS {
        vars.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    p.write(
        "inventory.yaml",
        &format!(
            "playbook: playbooks/main.yaml\nhosts:\n  a: {{ connection: local, address: 127.0.0.11, vars: {{ root: \"@ROOT@/a\" }} }}\n  b: {{ connection: local, address: 127.0.0.12, vars: {{ root: \"@ROOT@/b\" }} }}\n{vars}"
        ),
    );
    p.write("playbooks/main.yaml", PLAYBOOK);
    for h in ["a", "b"] {
        std::fs::create_dir_all(p.root(h)).unwrap();
    }
    p
}

#[test]
fn the_ei_xml_edits_apply_converge_and_render_as_applied() {
    let p = project();
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let again = p.run(&["plan", "inventory.yaml", "--no-color", "--json"]);
    assert_eq!(again.code, 0, "{}", again.all());
    again.assert_no_changes();
    for h in ["a", "b"] {
        let restarts = std::fs::read_to_string(p.root(h).join("restarts")).unwrap();
        assert_eq!(restarts, "restarted\n", "{h}: the handler runs once");
    }
    // The shipped files that now hold a password are the product user's only.
    for h in ["a", "b"] {
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "carbon.xml",
            "axis2/axis2.xml",
            "tomcat/catalina-server.xml",
            "user-mgt.xml",
        ] {
            let meta = std::fs::metadata(p.root(h).join("wso2ei-6.6.0/conf").join(f)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{h}: {f}");
        }
    }

    // What render shows is what apply left, secrets as placeholders.
    let out = p.path().join("rendered");
    let r = p.run(&[
        "render",
        "inventory.yaml",
        "--out",
        "rendered",
        "--no-color",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let conf = "wso2ei-6.6.0/conf";
    for h in ["a", "b"] {
        for f in [
            "carbon.xml",
            "axis2/axis2.xml",
            "tomcat/catalina-server.xml",
            "user-mgt.xml",
            "registry.xml",
            "datasources/master-datasources.xml",
        ] {
            let applied = p.root(h).join(conf).join(f);
            let mut want = std::fs::read_to_string(&applied).unwrap();
            for (_, v) in SECRETS {
                want = want.replace(v, "(sensitive)");
            }
            let rel = applied.strip_prefix("/").unwrap();
            let got = std::fs::read_to_string(out.join(h).join(rel))
                .unwrap_or_else(|e| panic!("{h}: {f} not rendered: {e}"));
            assert_eq!(got, want, "{h}: {f}");
            roxmltree::Document::parse(&want).unwrap_or_else(|e| panic!("{h}: {f}: {e}"));
        }
        // The other node only, in the members block.
        let axis2 = std::fs::read_to_string(p.root(h).join(conf).join("axis2/axis2.xml")).unwrap();
        let other = if h == "a" { "127.0.0.12" } else { "127.0.0.11" };
        let own = if h == "a" { "127.0.0.11" } else { "127.0.0.12" };
        assert!(
            axis2.contains(&format!("<hostName>{other}</hostName>")),
            "{axis2}"
        );
        assert!(
            !axis2.contains(&format!("<hostName>{own}</hostName>")),
            "{axis2}"
        );
        assert!(
            !axis2.contains("<hostName>127.0.0.1</hostName>"),
            "placeholder kept"
        );
        assert!(axis2.contains(&format!(
            "<parameter name=\"localMemberHost\">{own}</parameter>"
        )));
    }
}
