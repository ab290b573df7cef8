//! The fields of a Flux `Kustomization` that kustomize-controller's generator merges into the
//! kustomization it builds (fluxcd/pkg `kustomize/kustomize_generator.go`): `patches`, `images`
//! and `components` are appended to the lists of the folder's kustomization file, or of the one
//! generated for a folder without such a file. The artifact is never changed: the merge happens
//! in memory.

use serde_json::{Map, Value};

/// `spec.patches`, `spec.images` and `spec.components` of a Flux Kustomization, appended to
/// the kustomization [`crate::KustomizeRenderer::with_overlay`] builds. Entries have kustomize's
/// shapes (`{patch, target}`, `{name, newName, newTag, digest}`, a folder relative to the
/// built folder); a malformed one fails the build with [`crate::RenderError`] naming the field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    patches: Vec<Value>,
    images: Vec<Value>,
    components: Vec<String>,
}

impl Overlay {
    /// An empty overlay: the build is the folder's own.
    pub fn new() -> Self {
        Overlay::default()
    }

    /// Appends patches (`{patch: "<strategic merge or JSON 6902 text>", target: {...}}`).
    pub fn patches(mut self, patches: impl IntoIterator<Item = Value>) -> Self {
        self.patches.extend(patches);
        self
    }

    /// Appends image overrides (`{name, newName, newTag, digest}`).
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

    /// True when nothing is added.
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty() && self.images.is_empty() && self.components.is_empty()
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
        if !self.components.is_empty() {
            let c = self.components.iter().cloned().map(Value::String).collect();
            m.insert("components".into(), Value::Array(c));
        }
        Value::Object(m)
    }
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
    fn patches_images_and_components_are_appended_as_flux_generates() {
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
        // The overlay's entry is appended after the file's own, so its name is the one left.
        assert!(
            image.as_str().unwrap().starts_with("ghcr.io/x/nginx"),
            "{image}"
        );
        assert_eq!(d["metadata"]["annotations"]["patched"], "yes");
        assert_eq!(d["metadata"]["labels"]["team"], "a");
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
