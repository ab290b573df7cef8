//! The fields of a Flux `Kustomization` that kustomize-controller's generator merges into the
//! kustomization it builds (fluxcd/pkg `kustomize/kustomize_generator.go`): `patches` and
//! `components` are appended to the lists of the folder's kustomization file, or of the one
//! generated for a folder without such a file; an `images` entry replaces the file's entry of
//! the same `name`, else is appended; `targetNamespace`, `namePrefix` and `nameSuffix` replace
//! the file's own. The artifact is never changed: the merge happens in memory.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::RenderError;
use crate::kustomize::load::Kustomization;

/// `spec.targetNamespace`, `spec.patches`, `spec.images`, `spec.components` (with
/// `spec.ignoreMissingComponents`), `spec.namePrefix` and `spec.nameSuffix` of a Flux
/// Kustomization, merged into the
/// kustomization [`crate::KustomizeRenderer::with_overlay`] builds. Entries have kustomize's
/// shapes (`{patch, target}`, `{name, newName, newTag, digest}`, a folder relative to the
/// built folder); a malformed one fails the build with [`crate::RenderError`] naming the field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    target_namespace: Option<String>,
    patches: Vec<Value>,
    images: Vec<Value>,
    components: Vec<String>,
    ignore_missing_components: bool,
    name_prefix: Option<String>,
    name_suffix: Option<String>,
}

impl Overlay {
    /// An empty overlay: the build is the folder's own.
    pub fn new() -> Self {
        Overlay::default()
    }

    /// Sets `namespace` of the built kustomization, replacing the file's own, as Flux's
    /// generator does with `spec.targetNamespace`: kustomize's namespace transformer then sets
    /// it on every namespaced object and on the `subjects` of `RoleBinding`s and
    /// `ClusterRoleBinding`s that name a service account of the build (or `default`), as
    /// `kustomize build` does with `namespace:`. An empty namespace is no namespace.
    pub fn target_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.target_namespace = Some(namespace.into()).filter(|n| !n.is_empty());
        self
    }

    /// Appends patches (`{patch: "<strategic merge or JSON 6902 text>", target: {...}}`).
    pub fn patches(mut self, patches: impl IntoIterator<Item = Value>) -> Self {
        self.patches.extend(patches);
        self
    }

    /// Adds image overrides (`{name, newName, newTag, digest}`). At the merge an entry replaces
    /// wholesale the kustomization's `images` entry with the same `name` (the first one; its
    /// `newName`, `newTag` and `digest` are dropped, not merged field by field), else is
    /// appended, as Flux's generator does with `spec.images`.
    pub fn images(mut self, images: impl IntoIterator<Item = Value>) -> Self {
        self.images.extend(images);
        self
    }

    /// Appends components: folders of `kind: Component` kustomizations, relative to the built
    /// folder.
    pub fn components<S: Into<String>>(mut self, components: impl IntoIterator<Item = S>) -> Self {
        self.components
            .extend(components.into_iter().map(Into::into));
        self
    }

    /// Drops, at build time, every component of [`Overlay::components`] whose folder does not
    /// exist in the artifact instead of failing the build (Flux's
    /// `spec.ignoreMissingComponents`, Flux >= 2.5). Without it a missing component fails the
    /// build with [`RenderError::Missing`] naming it.
    pub fn ignore_missing_components(mut self, ignore: bool) -> Self {
        self.ignore_missing_components = ignore;
        self
    }

    /// Sets `namePrefix` of the built kustomization, replacing the file's own, as Flux's
    /// generator does with `spec.namePrefix`; kustomize's nameReference rules then rename the
    /// references too. An empty prefix is no prefix (Flux's field has a minimum length of 1).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into()).filter(|p| !p.is_empty());
        self
    }

    /// Sets `nameSuffix` of the built kustomization, replacing the file's own
    /// (`spec.nameSuffix`), as [`Overlay::name_prefix`] does.
    pub fn name_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.name_suffix = Some(suffix.into()).filter(|s| !s.is_empty());
        self
    }

    /// True when nothing is added.
    pub fn is_empty(&self) -> bool {
        self.target_namespace.is_none()
            && self.patches.is_empty()
            && self.images.is_empty()
            && self.components.is_empty()
            && self.name_prefix.is_none()
            && self.name_suffix.is_none()
    }

    /// Merges the overlay into `k`, the kustomization of the folder `dir`, as
    /// kustomize-controller's generator does: namespace replacing the file's, patches and
    /// components appended (a component that is not a local relative path is refused; one whose
    /// folder is missing is dropped under [`Overlay::ignore_missing_components`], else refused
    /// naming it), images replacing the file's entry of the same name or appended, name prefix
    /// and suffix replacing the file's.
    pub(crate) fn merge_into(&self, k: &mut Kustomization, dir: &Path) -> Result<(), RenderError> {
        if let Some(ns) = &self.target_namespace {
            k.namespace = ns.clone();
        }
        if !(self.patches.is_empty() && self.images.is_empty()) {
            let extra = Kustomization::from_value(&k.file, self.to_value())?;
            k.patches.extend(extra.patches);
            for image in extra.images {
                // Only `images` entries count, not the deprecated `imageTags` that kustomize
                // appends to them at build time: new entries go before those.
                let images = k
                    .images
                    .iter()
                    .take_while(|i| !i.field.starts_with("imageTags["))
                    .count();
                match k.images[..images].iter().position(|i| i.name == image.name) {
                    Some(at) => k.images[at] = image,
                    None => k.images.insert(images, image),
                }
            }
        }
        for component in &self.components {
            if !is_local_relative(component) {
                return Err(RenderError::field(
                    &k.file,
                    "components",
                    format!("component path '{component}' must be local and relative"),
                ));
            }
            let path = dir.join(component);
            if !path.exists() {
                if self.ignore_missing_components {
                    tracing::debug!(component, "missing component ignored");
                    continue;
                }
                return Err(RenderError::Missing {
                    file: k.file.clone(),
                    entry: format!("component '{component}'"),
                    path,
                });
            }
            k.components.push(component.clone());
        }
        if let Some(p) = &self.name_prefix {
            k.name_prefix = p.clone();
        }
        if let Some(s) = &self.name_suffix {
            k.name_suffix = s.clone();
        }
        Ok(())
    }

    /// The overlay as the fields of a kustomization file.
    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.patches.is_empty() {
            m.insert("patches".into(), Value::Array(self.patches.clone()));
        }
        if !self.images.is_empty() {
            m.insert("images".into(), Value::Array(self.images.clone()));
        }
        Value::Object(m)
    }
}

/// Whether `path` is a local relative path, as fluxcd/pkg's `IsLocalRelativePath` decides: not
/// absolute (also after a `file://` scheme) and not a remote address kustomize would fetch
/// (`git::`, `gh:`, `ssh://`, `https://`, `http://`, `git@`, `github.com:`, `github.com/`).
fn is_local_relative(path: &str) -> bool {
    const REMOTE: [&str; 8] = [
        "git::",
        "gh:",
        "ssh://",
        "https://",
        "http://",
        "git@",
        "github.com:",
        "github.com/",
    ];
    let lower = path.to_ascii_lowercase();
    if REMOTE
        .iter()
        .any(|p| lower.len() > p.len() && lower.starts_with(p))
    {
        return false;
    }
    let unschemed = lower.strip_prefix("file://").unwrap_or(&lower);
    !(Path::new(path).is_absolute() || Path::new(unschemed).is_absolute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KustomizeRenderer;

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.0\n";

    #[test]
    fn patches_images_and_components_are_merged_as_flux_generates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "app/deploy.yaml", DEPLOY);
        write(
            dir,
            "app/kustomization.yaml",
            "resources: [deploy.yaml]\nimages:\n- name: nginx\n  newTag: \"2.0\"\n",
        );
        write(
            dir,
            "comp/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  team: a\n",
        );
        let overlay = Overlay::new()
            .images([
                serde_json::json!({"name": "nginx", "newName": "ghcr.io/x/nginx", "newTag": "3.0"}),
            ])
            .patches([serde_json::json!({
                "patch": "- op: add\n  path: /metadata/annotations\n  value: {patched: \"yes\"}\n",
                "target": {"kind": "Deployment"}
            })])
            .components(["../comp"]);
        let objs = KustomizeRenderer::new()
            .with_overlay(overlay)
            .build_within(dir, &dir.join("app"))
            .unwrap();
        let d = objs[0].as_map();
        let image = &d["spec"]["template"]["spec"]["containers"][0]["image"];
        // The overlay's entry replaces the file's entry of the same name.
        assert_eq!(image, "ghcr.io/x/nginx:3.0");
        assert_eq!(d["metadata"]["annotations"]["patched"], "yes");
        assert_eq!(d["metadata"]["labels"]["team"], "a");
    }

    #[test]
    fn an_image_with_the_name_of_the_files_entry_replaces_it_wholesale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "deploy.yaml", DEPLOY);
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for own in [
            "{name: nginx, newName: registry.local/nginx, newTag: \"2.0\"}".to_string(),
            format!("{{name: nginx, digest: \"{digest}\"}}"),
        ] {
            write(
                dir,
                "kustomization.yaml",
                &format!("resources: [deploy.yaml]\nimages:\n- {own}\n"),
            );
            let overlay =
                Overlay::new().images([serde_json::json!({"name": "nginx", "newTag": "3.0"})]);
            let objs = KustomizeRenderer::new()
                .with_overlay(overlay)
                .build(dir)
                .unwrap();
            let image = &objs[0].as_map()["spec"]["template"]["spec"]["containers"][0]["image"];
            // Flux's generator replaces the entry: the file's newName and digest are dropped,
            // where appending would have kept them (and left the tag of the renamed image).
            assert_eq!(image, "nginx:3.0", "file entry {own}");
        }
    }

    #[test]
    fn images_replace_by_name_or_go_before_the_deprecated_image_tags() {
        let file = std::path::Path::new("kustomization.yaml");
        let mut k = Kustomization::from_value(
            file,
            serde_json::json!({
                "images": [{"name": "a", "newTag": "1"}, {"name": "nginx", "newTag": "1"}],
                "imageTags": [{"name": "nginx", "newTag": "old"}],
            }),
        )
        .unwrap();
        Overlay::new()
            .images([
                serde_json::json!({"name": "nginx", "newName": "n", "newTag": "2"}),
                serde_json::json!({"name": "b", "newTag": "2"}),
                serde_json::json!({"name": "b", "newTag": "3"}),
            ])
            .merge_into(&mut k, std::path::Path::new("."))
            .unwrap();
        let images: Vec<(&str, &str, &str)> = k
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.new_name.as_str(), i.new_tag.as_str()))
            .collect();
        assert_eq!(
            images,
            [
                ("a", "", "1"),
                ("nginx", "n", "2"),
                // A second overlay entry of the same name replaces the first one.
                ("b", "", "3"),
                ("nginx", "", "old"),
            ]
        );
    }

    #[test]
    fn target_namespace_moves_objects_and_binding_subjects_as_kustomize_does() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(
            dir,
            "sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: git-ns\n",
        );
        write(
            dir,
            "rb.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: app\n  namespace: git-ns\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: app\nsubjects:\n- kind: ServiceAccount\n  name: app\n  namespace: git-ns\n- kind: ServiceAccount\n  name: other\n  namespace: elsewhere\n- kind: ServiceAccount\n  name: default\n- kind: User\n  name: bob\n",
        );
        write(
            dir,
            "crb.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: app\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: view\nsubjects:\n- kind: ServiceAccount\n  name: app\n",
        );
        write(
            dir,
            "kustomization.yaml",
            "namespace: own\nresources: [sa.yaml, rb.yaml, crb.yaml]\n",
        );
        let objs = KustomizeRenderer::new()
            .with_overlay(Overlay::new().target_namespace("apps"))
            .build(dir)
            .unwrap();
        let find = |kind: &str| {
            objs.iter()
                .find(|o| o.kind() == kind)
                .unwrap_or_else(|| panic!("no {kind}"))
                .as_map()
        };
        assert_eq!(find("ServiceAccount")["metadata"]["namespace"], "apps");
        let rb = find("RoleBinding");
        assert_eq!(rb["metadata"]["namespace"], "apps");
        // What `kubectl kustomize` (kustomize v5.5) prints for this folder with
        // `namespace: apps`: the subject naming the build's service account and the `default`
        // one follow it; another namespace's account and a user are left alone.
        assert_eq!(
            rb["subjects"],
            serde_json::json!([
                {"kind": "ServiceAccount", "name": "app", "namespace": "apps"},
                {"kind": "ServiceAccount", "name": "other", "namespace": "elsewhere"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "apps"},
                {"kind": "User", "name": "bob"},
            ])
        );
        let crb = find("ClusterRoleBinding");
        assert!(crb["metadata"].get("namespace").is_none(), "{crb:?}");
        assert_eq!(crb["subjects"][0]["namespace"], "apps");
    }

    #[test]
    fn a_folder_without_kustomization_gets_the_overlay_too() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "deploy.yaml", DEPLOY);
        let overlay = Overlay::new().images([serde_json::json!({"name": "nginx", "newTag": "9"})]);
        let objs = KustomizeRenderer::new()
            .with_overlay(overlay)
            .build(tmp.path())
            .unwrap();
        let image = &objs[0].as_map()["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(image, "nginx:9");
    }

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app\nspec:\n  ports:\n  - port: 80\n";
    const CONFIGMAP: &str =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: env\ndata:\n  a: b\n";

    #[test]
    fn name_prefix_and_suffix_replace_the_files_and_rename_references() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let deploy =
            format!("{DEPLOY}        envFrom:\n        - configMapRef:\n            name: env\n");
        write(dir, "deploy.yaml", &deploy);
        write(dir, "cm.yaml", CONFIGMAP);
        write(
            dir,
            "kustomization.yaml",
            "namePrefix: own-\nresources: [deploy.yaml, cm.yaml]\n",
        );
        let overlay = Overlay::new().name_prefix("flux-").name_suffix("-v1");
        let objs = KustomizeRenderer::new()
            .with_overlay(overlay)
            .build(dir)
            .unwrap();
        let names: Vec<&str> = objs.iter().map(|o| o.name()).collect();
        // Flux's generator sets the kustomization's namePrefix: the file's own is replaced.
        assert_eq!(names, ["flux-env-v1", "flux-app-v1"]);
        let d = objs[1].as_map();
        let env_from = &d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0];
        assert_eq!(env_from["configMapRef"]["name"], "flux-env-v1");

        // An empty prefix is no prefix: the file's own stays.
        let objs = KustomizeRenderer::new()
            .with_overlay(Overlay::new().name_prefix(""))
            .build(dir)
            .unwrap();
        assert_eq!(objs[0].name(), "own-env");
    }

    #[test]
    fn a_missing_component_fails_naming_it_unless_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "app/svc.yaml", SERVICE);
        write(
            dir,
            "comp/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  team: a\n",
        );
        let overlay = Overlay::new().components(["../comp", "../absent"]);
        let err = KustomizeRenderer::new()
            .with_overlay(overlay.clone())
            .build_within(dir, &dir.join("app"))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("component '../absent'"), "{message}");
        assert!(message.contains("no such file or folder"), "{message}");

        let objs = KustomizeRenderer::new()
            .with_overlay(overlay.ignore_missing_components(true))
            .build_within(dir, &dir.join("app"))
            .unwrap();
        // The existing component still applies.
        assert_eq!(objs[0].as_map()["metadata"]["labels"]["team"], "a");
    }

    #[test]
    fn a_remote_or_absolute_component_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "svc.yaml", SERVICE);
        for component in [
            "https://github.com/x/y//c",
            "/etc",
            "file:///etc",
            "git@github.com:x/y",
        ] {
            let err = KustomizeRenderer::new()
                .with_overlay(
                    Overlay::new()
                        .components([component])
                        .ignore_missing_components(true),
                )
                .build(tmp.path())
                .unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&format!(
                    "component path '{component}' must be local and relative"
                )),
                "{message}"
            );
        }
        assert!(is_local_relative("../components/a"));
        assert!(is_local_relative("gh"));
    }

    #[test]
    fn a_malformed_entry_names_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "deploy.yaml", DEPLOY);
        let overlay = Overlay::new().images([serde_json::json!({"name": "nginx", "newTga": "9"})]);
        let err = KustomizeRenderer::new()
            .with_overlay(overlay)
            .build(tmp.path())
            .unwrap_err();
        assert!(err.to_string().contains("images[0].newTga"), "{err}");
    }
}
