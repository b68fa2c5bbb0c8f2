//! Seeding the directory from a file, reading it back through the store.

use integration_tests::{repo_path, stack};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::city;
use leads_domain::directory::{AccountOwner, Platform};
use leads_domain::directory_file::DirectoryFile;

fn load(relative: &str) -> DirectoryFile {
    let text = std::fs::read_to_string(repo_path(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn sample_directory_seeds_and_reads_back() {
    let Some(stack) = stack().await else { return };
    let store = DynamoDirectory::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.directory,
    );
    let directory = load("data/sample-directory.json")
        .validate()
        .expect("sample is valid");
    let written = store.save(&directory).await.unwrap();
    assert!(written > directory.dealers.len());
    // Seeding twice is harmless (upsert).
    store.save(&directory).await.unwrap();

    let brands = store.brands().await.unwrap();
    assert!(brands.iter().any(|b| b.brand_id == "hongtu"));

    let account = store
        .account(Platform::Douyin, "dy-ht-jn-01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        account.owner,
        AccountOwner::Dealer {
            dealer_id: "ht-jn-01".into()
        }
    );
    let dealer = store.dealer("ht-jn-01").await.unwrap().unwrap();
    let jinan = city::normalise("济南").unwrap().code;
    let taian = city::normalise("泰安").unwrap().code;
    assert_eq!(dealer.city, jinan);
    assert!(dealer.serves(taian));

    let staff = store.staff_of("ht-jn-01").await.unwrap();
    assert_eq!(staff.len(), 4);
    assert_eq!(
        store.dealers_serving("hongtu", taian).await.unwrap(),
        vec!["ht-jn-01"]
    );
    // Brand scope: another brand's Beijing dealer does not serve hongtu's customers.
    let beijing = city::normalise("北京市").unwrap().code;
    assert_eq!(
        store.dealers_serving("hongtu", beijing).await.unwrap(),
        vec!["ht-bj-01"]
    );
    assert_eq!(store.dealers_of("xinglan").await.unwrap().len(), 4);
    assert!(store
        .account(Platform::Douyin, "no-such-account")
        .await
        .unwrap()
        .is_none());
}

#[test]
fn bad_rows_are_all_reported_with_section_and_reason() {
    let errors = load("tests/fixtures/bad-directory.json")
        .validate()
        .unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("brands[1] (hongtu): duplicate brand_id"), "{text:#?}");
    assert!(has("unknown city \"亚特兰蒂斯\""), "{text:#?}");
    assert!(has("dealers[1] (x1): duplicate dealer_id"), "{text:#?}");
    assert!(has("unknown brand \"nobrand\""), "{text:#?}");
    assert!(
        has("staff[0] (s): unknown dealer \"nodealer\""),
        "{text:#?}"
    );
}
